"""eps is never stored: sampling 2 x 10^6 x 16 costs the output and almost
nothing else (peak RSS of a fresh process, reset just before the call)."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = r"""
import json, numpy as np
from stressvae import native

def status(key):  # this process's own counters (ru_maxrss would include the parent's peak)
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024

mu = np.zeros(16, np.float32); lv = np.zeros(16, np.float32)
native.sample_latent(mu, lv, 100_000, seed=0)  # threads, pages of the code
with open("/proc/self/clear_refs", "w") as f:  # reset the high-water mark to now
    f.write("5")
base = status("VmRSS:")
z = native.sample_latent(mu, lv, {mode_n}, seed=0)
peak = status("VmHWM:")
print(json.dumps({{"base": base, "peak": peak, "out": z.nbytes}}))
"""


def measure(n: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(mode_n=n)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


def test_extra_memory_at_2e6_by_16_is_under_one_percent_of_the_output():
    m = measure(2_000_000)
    extra = m["peak"] - m["base"] - m["out"]
    assert m["out"] == 2_000_000 * 16 * 4
    assert extra <= 0.01 * m["out"], (
        f"extra {extra / 2**20:.1f} MiB over a {m['out'] / 2**20:.0f} MiB output"
    )
