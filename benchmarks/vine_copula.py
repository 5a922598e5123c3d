"""skfolio's VineCopula as the one-day what-if peer (benchmarks only).

skfolio is not a dependency of stressvae. Install it apart, e.g. in a
separate virtual environment that still sees the project's packages::

    python -m venv --system-site-packages /work/venv-sk
    /work/venv-sk/bin/pip install skfolio
    /work/venv-sk/bin/python benchmarks/whatif_stocks.py

``benchmarks/whatif_stocks.py`` imports this module and skips the vine part,
with a printed line, when skfolio is missing.

Run alone it fits the vine to the 20 stocks' daily returns up to 2012 and
prints its conditional draws for "JPM <= -8 % on a day"::

    python benchmarks/vine_copula.py --n 10000
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np


def available() -> str | None:
    """skfolio's version, or None when it cannot be imported."""
    try:
        import skfolio
    except ImportError:
        return None
    return str(skfolio.__version__)


def fit_vine(simple_returns, central: list[str], seed: int = 0, max_depth: int | None = 4):
    """A fitted ``skfolio.distribution.VineCopula``.

    simple_returns: DataFrame [days, assets] of daily simple returns
        (fractions, -0.08 = -8 %), assets named in the columns.
    central: the assets to condition on later; skfolio places them at the
        centre of the vine (its advice for conditional sampling).
    max_depth: vine truncation (skfolio's default 4; None = no truncation).
    Marginals and pair copulas are skfolio's defaults (Gaussian / Student-t /
    Johnson SU marginals; Gaussian, Student-t, Clayton, Gumbel, Joe pairs,
    rotations included, chosen by AIC); ``log_transform=True`` fits them on
    log returns and samples simple returns back.
    """
    from skfolio.distribution import VineCopula

    missing = [c for c in central if c not in simple_returns.columns]
    if missing:
        raise ValueError(f"central assets {missing} are not columns of simple_returns")
    if not np.isfinite(simple_returns.to_numpy()).all():
        raise ValueError("simple_returns holds NaN or inf")
    vine = VineCopula(
        central_assets=list(central),
        log_transform=True,
        max_depth=max_depth,
        n_jobs=1,
        random_state=seed,
    )
    return vine.fit(simple_returns)


def conditional_sample(vine, n: int, conditioning: dict, seed: int) -> np.ndarray:
    """float64 [n, assets] daily simple returns drawn from ``vine`` given
    ``conditioning`` (skfolio's form: asset -> value, or (low, high) bounds
    with None for an open end, in simple-return units); an empty dict draws
    unconditionally. The vine's random state is set to ``seed`` first."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    vine.random_state = seed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = vine.sample(n_samples=n, conditioning=conditioning or None)
    return np.asarray(out, dtype=np.float64)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--asset", default="JPM")
    p.add_argument("--threshold", type=float, default=-0.08, help="daily simple return bound")
    args = p.parse_args(argv)
    if available() is None:
        print("skfolio is not installed here: nothing to do (see this file's docstring)")
        return 0
    import pandas as pd

    import stressvae as sv

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RRC's 1990 price jump: reported by load_dataset
        prices = sv.load_dataset("sp500_stocks")
    simple = prices.loc[:"2012-12-31"].pct_change().iloc[1:]
    t0 = time.perf_counter()
    vine = fit_vine(simple, [args.asset], seed=0)
    print(f"fitted in {time.perf_counter() - t0:.1f} s on {len(simple)} days", flush=True)
    t0 = time.perf_counter()
    x = conditional_sample(vine, args.n, {args.asset: (None, args.threshold)}, args.seed)
    print(f"sampled {args.n} in {time.perf_counter() - t0:.1f} s")
    frame = pd.DataFrame(x, columns=simple.columns)
    print(frame.describe(percentiles=[0.05, 0.5, 0.95]).T.to_string(float_format="{:.4f}".format))
    return 0


if __name__ == "__main__":
    sys.exit(main())
