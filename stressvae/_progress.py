"""Progress bars: a tqdm bar, or one that does nothing."""

from __future__ import annotations

from typing import Any


class QuietBar:
    """The bar when progress is off: every call does nothing."""

    def update(self, _n: int = 1) -> None:
        pass

    def set_postfix(self, **_: Any) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, enabled: bool, unit: str = "path", desc: str = "") -> Any:
    """A tqdm bar over ``total`` ``unit``s (cleared when done), or a
    :class:`QuietBar` when ``enabled`` is false."""
    if not enabled:
        return QuietBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, unit_scale=unit != "epoch", desc=desc, leave=False)
