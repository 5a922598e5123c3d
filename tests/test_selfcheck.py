"""The registry of the CUDA self-checks (stressvae.native.selfcheck), on the
CPU: a check runs once per key, the kernel calls it makes go through, a
failure is not recorded, and the tolerance names what differs."""

from __future__ import annotations

import numpy as np
import pytest

from stressvae.native import selfcheck


def test_a_check_runs_once_per_key_and_its_own_calls_go_through():
    key = ("test-op", 0, 3)
    runs = []

    def check():
        runs.append(key)
        selfcheck.run_once(key, check)  # the kernel call inside the check: no recursion

    selfcheck.run_once(key, check)
    selfcheck.run_once(key, check)
    assert runs == [key]
    assert key in selfcheck.passed()
    assert 0 in selfcheck.devices_passed("test-op")


def test_a_failing_check_is_not_recorded_and_runs_again():
    key = ("test-fail", 1)
    runs = []

    def check():
        runs.append(key)
        raise RuntimeError("mismatch")

    for _ in range(2):
        with pytest.raises(RuntimeError, match="mismatch"):
            selfcheck.run_once(key, check)
    assert len(runs) == 2
    assert key not in selfcheck.passed()


def test_float32_tolerance():
    want = np.linspace(-1.0, 1.0, 101).astype(np.float32)
    selfcheck.assert_close_float32("decoder", 0, "decode(z)", want * np.float32(1 + 5e-6), want)
    bad = want.copy()
    bad[7] += 1e-3
    with pytest.raises(
        RuntimeError, match=r"decoder self-check failed on cuda:0 \(decode\(z\)\): 1 of 101"
    ):
        selfcheck.assert_close_float32("decoder", 0, "decode(z)", bad, want)
    bad[7] = np.nan
    with pytest.raises(RuntimeError, match="1 of 101 values differ"):
        selfcheck.assert_close_float32("rollout", 0, "rollout(z)", bad, want)
