"""Events on scenario paths: the conditions of what-if scenarios.

An event is a condition on a statistic of a path, for one asset or for a
portfolio of the assets, or a combination of such conditions::

    import stressvae as sv
    ev = sv.Event.parse("JPM:return<=-20%")             # JPM's total return
    ev = sv.Event.parse("ew:drawdown<=-15%")            # equal weight, max drawdown
    ev = sv.Event.parse("{JPM=0.5,BAC=0.5}:worst_day<=-8%")
    ev = sv.Event.parse("^GSPC:vol>=40%")               # annualized realized volatility
    ev = sv.Event.parse("JPM:return<=-20% & KO:return>=0%")   # & binds tighter than |
    ev = sv.events.total_return("JPM") <= -0.20          # the same, in Python
    ev = (sv.events.drawdown("ew") <= -0.15) | (sv.events.volatility("ew") >= 0.4)

Statistics, over the whole path (``horizon`` days), of simple returns (a
fraction: -0.2 = -20 %):

- ``return``: total return, ``exp(sum of log returns) - 1``;
- ``worst_day`` / ``best_day``: the lowest / highest daily simple return;
- ``drawdown``: the maximum drawdown of the value path (from its running
  peak, the start included), a number <= 0;
- ``vol``: realized volatility, ``sqrt(252 * mean(log return^2))``.

A portfolio is rebalanced to its weights every day: its daily simple return
is ``sum_a w_a (exp(r_a) - 1)`` (the same convention as
:func:`stressvae.realism.portfolio_returns`). ``ew`` is equal weight.

An event is bound to a model's asset names (:meth:`Event.bind`) before it
is evaluated on returns ``[n, horizon, assets]``; binding checks that every
asset it names exists. For importance sampling an event also gives a
*margin* per path: <= 0 inside the event, growing with the distance from it
(each condition's signed excess over its threshold, divided by a scale;
``&`` takes the largest, ``|`` the smallest).
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import numpy as np

__all__ = [
    "STATISTICS",
    "Condition",
    "Event",
    "best_day",
    "drawdown",
    "statistic",
    "total_return",
    "volatility",
    "worst_day",
]

STATISTICS = ("return", "worst_day", "best_day", "drawdown", "vol")
_OPS = ("<=", ">=")
_TRADING_DAYS = 252


def _daily_simple(returns: np.ndarray, target: Any) -> np.ndarray:
    """Daily simple returns [n, horizon] of one asset (int) or a portfolio
    (float64 weights [assets]) from log returns [n, horizon, assets]."""
    r = np.asarray(returns)
    if isinstance(target, (int, np.integer)):
        return np.expm1(r[:, :, int(target)].astype(np.float64))
    out = np.zeros(r.shape[:2])
    for a in np.flatnonzero(target):
        out += target[a] * np.expm1(r[:, :, a].astype(np.float64))
    return out


def statistic(returns: np.ndarray, stat: str, target: Any) -> np.ndarray:
    """The path statistic ``stat`` (one of :data:`STATISTICS`) of each path,
    float64 [n], for an asset index or a weight vector over the assets;
    ``returns`` are daily log returns [n, horizon, assets]."""
    if stat not in STATISTICS:
        raise ValueError(f"statistic must be one of {STATISTICS}, got {stat!r}")
    s = _daily_simple(returns, target)
    if s.shape[1] == 0:
        raise ValueError("paths of 0 days have no statistics")
    if stat == "worst_day":
        return s.min(axis=1)
    if stat == "best_day":
        return s.max(axis=1)
    logs = np.log1p(np.maximum(s, -1.0 + 1e-12))
    if stat == "return":
        return np.expm1(logs.sum(axis=1))
    if stat == "vol":
        return np.sqrt(_TRADING_DAYS * np.mean(logs * logs, axis=1))
    level = np.cumsum(logs, axis=1)
    peak = np.maximum(np.maximum.accumulate(level, axis=1), 0.0)  # the start (0) is a peak
    return np.expm1((level - peak).min(axis=1)).clip(max=0.0)


class Event:
    """A condition on scenario paths (see the module docstring); combine
    with ``&`` and ``|``."""

    def __and__(self, other: Event) -> Event:
        return _Combined("&", (self, _as_event(other)))

    def __or__(self, other: Event) -> Event:
        return _Combined("|", (self, _as_event(other)))

    # ------------------------------------------------------------ interface
    def conditions(self) -> list[Condition]:
        """The conditions, in order (leaves of the combination)."""
        raise NotImplementedError

    def bind(self, asset_names: list[str]) -> Event:
        """This event with every asset name resolved against
        ``asset_names``; raises ValueError for an unknown name or weights of
        the wrong length."""
        raise NotImplementedError

    def combine(self, values: np.ndarray) -> np.ndarray:
        """Per path, the event's margin from its conditions' margins
        [n, conditions] (max for &, min for |)."""
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def combine_probabilities(self, logp: np.ndarray) -> np.ndarray:
        """The event's log-probability per row from its conditions'
        [n, conditions], as if they were independent (& multiplies, |
        takes the complement of no condition): an approximation for
        proposals, not an estimate."""
        raise NotImplementedError

    # ------------------------------------------------------------ evaluation
    def statistics(self, returns: np.ndarray) -> np.ndarray:
        """Each condition's statistic per path, float64 [n, conditions]."""
        conds = self._bound_conditions()
        return np.stack([statistic(returns, c.stat, c.resolved) for c in conds], axis=1)

    def margins(self, stats: np.ndarray, scales: np.ndarray | None = None) -> np.ndarray:
        """The event's margin per path from :meth:`statistics` (<= 0 inside
        the event), each condition's excess divided by ``scales``."""
        conds = self.conditions()
        thr = np.array([c.threshold for c in conds])
        sign = np.array([1.0 if c.op == "<=" else -1.0 for c in conds])
        excess = (np.asarray(stats, np.float64) - thr) * sign
        if scales is not None:
            excess = excess / np.asarray(scales, np.float64)
        return self.combine(excess)

    def occurs(self, returns: np.ndarray) -> np.ndarray:
        """bool [n]: which paths (log returns [n, horizon, assets]) are in the event."""
        return self.margins(self.statistics(returns)) <= 0

    def _bound_conditions(self) -> list[Condition]:
        conds = self.conditions()
        if any(c.resolved is None for c in conds):
            raise ValueError("bind the event to the model's asset names first: event.bind(names)")
        return conds

    @staticmethod
    def parse(text: str) -> Event:
        """An event from text: conditions ``TARGET:STAT OP VALUE[%]`` joined
        by ``&`` (and) and ``|`` (or; ``&`` binds tighter). TARGET is an asset
        name, ``ew`` (equal weight) or ``{NAME=W,...}`` / ``{W,W,...}``
        (weights); STAT one of :data:`STATISTICS`; OP ``<=`` or ``>=``."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"an event must be a non-empty string, got {text!r}")
        ors = [part.strip() for part in _split_top(text, "|")]
        terms = []
        for part in ors:
            ands = [_parse_condition(c.strip()) for c in _split_top(part, "&")]
            terms.append(ands[0] if len(ands) == 1 else _Combined("&", tuple(ands)))
        return terms[0] if len(terms) == 1 else _Combined("|", tuple(terms))

    def __repr__(self) -> str:
        return f"Event({self.describe()!r})"


def _as_event(x: Any) -> Event:
    if isinstance(x, Event):
        return x
    if isinstance(x, str):
        return Event.parse(x)
    raise TypeError(f"cannot combine an event with {type(x).__name__}")


def _split_top(text: str, sep: str) -> list[str]:
    """Splits on ``sep`` outside braces."""
    parts, depth, cur = [], 0, []
    for ch in text:
        depth += ch == "{"
        depth -= ch == "}"
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    if any(not p.strip() for p in parts):
        raise ValueError(f"event {text!r}: an empty condition around {sep!r}")
    return parts


_CONDITION = re.compile(
    r"^(?P<target>.+):\s*(?P<stat>[a-z_]+)\s*(?P<op><=|>=|<|>|=)\s*"
    r"(?P<value>[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?)\s*(?P<pct>%?)$"
)


def _parse_condition(text: str) -> Condition:
    m = _CONDITION.match(text)
    if m is None:
        raise ValueError(
            f"cannot read the condition {text!r}: write TARGET:STAT<=VALUE, e.g. "
            "'JPM:return<=-20%', 'ew:drawdown<=-15%', '{JPM=0.5,BAC=0.5}:vol>=40%'"
        )
    op = m["op"]
    if op not in _OPS:
        raise ValueError(f"condition {text!r}: the comparison must be <= or >=, got {op!r}")
    value = float(m["value"]) / (100.0 if m["pct"] else 1.0)
    target = m["target"].strip()
    if target.startswith("{"):
        if not target.endswith("}"):
            raise ValueError(f"condition {text!r}: weights must be written {{NAME=W,...}}")
        target = _parse_weights(target[1:-1], text)
    return Condition(m["stat"], target, op, value)


def _parse_weights(body: str, text: str) -> Any:
    items = [x.strip() for x in body.split(",") if x.strip()]
    if not items:
        raise ValueError(f"condition {text!r}: empty weights")
    try:
        if all("=" in x for x in items):
            return {k.strip(): float(v) for k, v in (x.split("=", 1) for x in items)}
        if any("=" in x for x in items):
            raise ValueError
        return tuple(float(x) for x in items)
    except ValueError:
        raise ValueError(f"condition {text!r}: weights must be all NAME=W or all numbers") from None


@dataclasses.dataclass(frozen=True)
class Condition(Event):
    """``statistic(target) op threshold``: target an asset name, ``"ew"``,
    a {name: weight} mapping or a weight sequence over the model's assets."""

    stat: str
    target: Any
    op: str
    threshold: float
    resolved: Any = dataclasses.field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.stat not in STATISTICS:
            raise ValueError(f"statistic must be one of {STATISTICS}, got {self.stat!r}")
        if self.op not in _OPS:
            raise ValueError(f"the comparison must be one of {_OPS}, got {self.op!r}")
        if isinstance(self.threshold, bool) or not math.isfinite(float(self.threshold)):
            raise ValueError(f"the threshold must be a finite number, got {self.threshold!r}")
        object.__setattr__(self, "threshold", float(self.threshold))
        if isinstance(self.target, dict):
            object.__setattr__(self, "target", tuple(sorted(self.target.items())))
        elif isinstance(self.target, (list, np.ndarray)):
            object.__setattr__(self, "target", tuple(float(x) for x in self.target))
        if self.stat == "drawdown" and self.op == "<=" and self.threshold > 0:
            raise ValueError(f"a drawdown is <= 0, so drawdown <= {self.threshold} always holds")
        if self.stat == "vol" and self.threshold < 0:
            raise ValueError(f"realized volatility is >= 0, got the threshold {self.threshold}")

    def conditions(self) -> list[Condition]:
        return [self]

    def combine(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values)[:, 0]

    def combine_probabilities(self, logp: np.ndarray) -> np.ndarray:
        return np.asarray(logp)[:, 0]

    def target_name(self) -> str:
        t = self.target
        if isinstance(t, str):
            return t
        if t and isinstance(t[0], tuple):
            return "{" + ",".join(f"{k}={v:g}" for k, v in t) + "}"
        return "{" + ",".join(f"{v:g}" for v in t) + "}"

    def describe(self) -> str:
        return f"{self.target_name()}:{self.stat}{self.op}{self.threshold * 100:g}%"

    def bind(self, asset_names: list[str]) -> Condition:
        names = list(asset_names)
        return dataclasses.replace(self, resolved=_resolve(self.target, names))


def _resolve(target: Any, names: list[str]) -> Any:
    """An asset index, or float64 weights [assets]."""
    n = len(names)
    if isinstance(target, str):
        if target in names:
            return names.index(target)
        if target.lower() in ("ew", "equal_weight", "equal-weight"):
            return np.full(n, 1.0 / n)
        folded = [i for i, x in enumerate(names) if x.lower() == target.lower()]
        if len(folded) == 1:
            return folded[0]
        raise ValueError(
            f"unknown asset {target!r}: the model's assets are {names} (or 'ew' for equal weight)"
        )
    if target and isinstance(target[0], tuple):
        w = np.zeros(n)
        for name, value in target:
            if name not in names:
                raise ValueError(
                    f"unknown asset {name!r} in the weights: the model's assets are {names}"
                )
            w[names.index(name)] = value
    else:
        w = np.asarray(target, np.float64)
        if w.shape != (n,):
            raise ValueError(f"weights must have one value per asset ({n}: {names}), got {len(w)}")
    if not np.all(np.isfinite(w)) or not np.any(w):
        raise ValueError(f"weights must be finite and not all zero, got {list(w)}")
    return w


@dataclasses.dataclass(frozen=True)
class _Combined(Event):
    how: str  # "&" or "|"
    parts: tuple

    def conditions(self) -> list[Condition]:
        return [c for p in self.parts for c in p.conditions()]

    def bind(self, asset_names: list[str]) -> _Combined:
        return _Combined(self.how, tuple(p.bind(asset_names) for p in self.parts))

    def _per_part(self, values: np.ndarray, method: str) -> np.ndarray:
        """[n, parts]: each part's ``method`` applied to its own columns of
        the per-condition ``values`` [n, conditions]."""
        cols, at = [], 0
        for p in self.parts:
            k = len(p.conditions())
            cols.append(getattr(p, method)(values[:, at : at + k]))
            at += k
        return np.stack(cols, axis=1)

    def combine(self, values: np.ndarray) -> np.ndarray:
        stack = self._per_part(np.asarray(values), "combine")
        return stack.max(axis=1) if self.how == "&" else stack.min(axis=1)

    def combine_probabilities(self, logp: np.ndarray) -> np.ndarray:
        stack = self._per_part(np.asarray(logp, np.float64), "combine_probabilities")
        if self.how == "&":
            return stack.sum(axis=1)
        none = np.log1p(-np.exp(np.minimum(stack, -1e-12))).sum(axis=1)  # log P(no part)
        return np.log(-np.expm1(np.minimum(none, -1e-300)))

    def describe(self) -> str:
        inner = [p.describe() for p in self.parts]
        if self.how == "&":
            inner = [
                f"({x})" if isinstance(p, _Combined) else x
                for p, x in zip(self.parts, inner, strict=True)
            ]
        return f" {self.how} ".join(inner)


class _Statistic:
    """``sv.events.total_return("JPM") <= -0.2`` builds a Condition."""

    def __init__(self, stat: str, target: Any) -> None:
        self.stat, self.target = stat, target

    def __le__(self, value: float) -> Condition:
        return Condition(self.stat, self.target, "<=", value)

    def __ge__(self, value: float) -> Condition:
        return Condition(self.stat, self.target, ">=", value)


def total_return(target: Any) -> _Statistic:
    """Total simple return over the path of an asset / portfolio."""
    return _Statistic("return", target)


def worst_day(target: Any) -> _Statistic:
    """The lowest daily simple return over the path."""
    return _Statistic("worst_day", target)


def best_day(target: Any) -> _Statistic:
    """The highest daily simple return over the path."""
    return _Statistic("best_day", target)


def drawdown(target: Any) -> _Statistic:
    """The maximum drawdown over the path (<= 0)."""
    return _Statistic("drawdown", target)


def volatility(target: Any) -> _Statistic:
    """Annualized realized volatility over the path."""
    return _Statistic("vol", target)
