"""The import graph of the package, read from the source with ast: data flows
one way (each module imports only modules below it in LAYERS, at module level
or inside a function), and no module reaches into another's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "stressvae"

# Lowest first. A module may import only modules that come before it here.
# The native package (stressvae/native/) is one node; its own modules
# import each other freely.
LAYERS = (
    "_version",
    "_files",
    "_checks",
    "_progress",
    "_reference",
    "_core",  # the compiled extension modules
    "_cuda",
    "native",
    "data",
    "datasets",
    "events",  # conditions on paths (what-if scenarios)
    "model",
    "train",
    "_importance",  # the what-if proposal (numpy)
    "generate",
    "baselines",
    "distributed",  # the engine: a plan's shards, locally or on Dask
    "strategies",
    "_backtest_nb",
    "backtesting",
    "realism",
    "_figures",
    "risk",  # the VaR backtest
    "_html",
    "report",
    "cli",
    "__main__",
    "__init__",
)
RANK = {name: i for i, name in enumerate(LAYERS)}


def _sources() -> list[Path]:
    return sorted(PKG.rglob("*.py"))


def _module(path: Path) -> tuple[str, ...]:
    """("native", "checks") for stressvae/native/checks.py, ("__init__",) for
    the package itself, ("native",) for stressvae/native/__init__.py."""
    parts = path.relative_to(PKG).with_suffix("").parts
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return parts


def _node(parts: tuple[str, ...]) -> str:
    return parts[0]


def _package_of(path: Path) -> tuple[str, ...]:
    """The package a relative import in ``path`` starts from (level 1)."""
    return path.relative_to(PKG).parent.parts


def _imports(path: Path) -> list[tuple[tuple[str, ...], list[str], int]]:
    """(imported stressvae module parts, the names taken from it, line) for
    every import of a stressvae module in ``path``, wherever it stands."""
    out = []
    for n in ast.walk(ast.parse(path.read_text())):
        if isinstance(n, ast.ImportFrom):
            if n.level > 0:
                base = _package_of(path)
                base = base[: len(base) - (n.level - 1)]
            elif n.module and n.module.split(".")[0] == "stressvae":
                base = ()
                n_module = n.module.split(".", 1)[1] if "." in n.module else None
                target = tuple(n_module.split(".")) if n_module else ()
                out.append((target, [a.name for a in n.names], n.lineno))
                continue
            else:
                continue
            target = base + (tuple(n.module.split(".")) if n.module else ())
            out.append((target, [a.name for a in n.names], n.lineno))
        elif isinstance(n, ast.Import):
            for a in n.names:
                parts = a.name.split(".")
                if parts[0] == "stressvae" and len(parts) > 1:
                    out.append((tuple(parts[1:]), [], n.lineno))
    return out


def _is_module(parts: tuple[str, ...]) -> bool:
    p = PKG.joinpath(*parts)
    return p.with_suffix(".py").exists() or (p / "__init__.py").exists() or parts[0] in RANK


def test_every_module_has_a_layer():
    missing = sorted({_node(_module(p)) for p in _sources()} - set(RANK))
    assert not missing, f"add {missing} to LAYERS in tests/test_architecture.py"


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(PKG)))
def test_imports_only_go_down(path):
    me = _node(_module(path))
    wrong = []
    for target, names, line in _imports(path):
        # `from . import x` names modules: each is a target of its own
        targets = [(*target, name) for name in names] if not target else [target]
        if not target and not names:
            continue
        for t in targets:
            other = _node(t) if t else None
            if other is None or other == me:
                continue
            if other not in RANK:
                wrong.append(f"line {line}: {'.'.join(t)} is not in LAYERS")
            elif RANK[other] >= RANK[me]:
                wrong.append(f"line {line}: {me} imports {other}, which is not below it")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(PKG)))
def test_no_private_name_of_another_module_is_used(path):
    me = _module(path)
    tree = ast.parse(path.read_text())
    wrong = []
    stressvae_modules = set()  # local names bound to stressvae modules
    outside = set()  # local names bound to other packages (os._exit is theirs)
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            for a in n.names:
                local = a.asname or a.name.split(".")[0]
                (stressvae_modules if a.name.startswith("stressvae") else outside).add(local)
        elif isinstance(n, ast.ImportFrom):
            internal = n.level > 0 or (n.module or "").split(".")[0] == "stressvae"
            for a in n.names:
                (stressvae_modules if internal else outside).add(a.asname or a.name)
    for target, names, line in _imports(path):
        same_node = target and _node(target) == _node(me)
        for name in names:
            private = name.startswith("_") and not name.startswith("__")
            if private and not same_node and not _is_module((*target, name)):
                wrong.append(f"line {line}: imports {name} from {'.'.join(target)}")
    for n in ast.walk(tree):
        if not (isinstance(n, ast.Attribute) and n.attr.startswith("_")):
            continue
        if n.attr.startswith("__") or _is_module((n.attr,)):
            continue
        base = n.value
        if isinstance(base, ast.Name) and (base.id in ("self", "cls") or base.id in outside):
            continue
        if isinstance(base, ast.Name) and base.id in stressvae_modules and me[0] == "native":
            continue  # the native package's own modules
        wrong.append(f"line {n.lineno}: {ast.unparse(n)} (a private name of another object)")
    assert not wrong, "\n".join(wrong)


def test_the_graph_has_no_circle():
    """Implied by the one-way order, checked directly as well."""
    graph: dict[str, set[str]] = {}
    for path in _sources():
        me = _node(_module(path))
        for target, names, _ in _imports(path):
            for t in [(*target, x) for x in names] if not target else [target]:
                if t and _node(t) != me and _node(t) in RANK:
                    graph.setdefault(me, set()).add(_node(t))
    seen: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        if seen.get(m) == 1:
            raise AssertionError("import circle: " + " -> ".join([*stack, m]))
        if seen.get(m) == 2:
            return
        seen[m] = 1
        for d in sorted(graph.get(m, ())):
            visit(d, [*stack, m])
        seen[m] = 2

    for m in sorted(graph):
        visit(m, [])
