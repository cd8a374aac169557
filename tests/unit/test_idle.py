"""The idle penalty: a run after the runtime waited, against one back to back."""

from __future__ import annotations

import time

import pytest

from edgepart.profile import idle


def test_a_slow_first_run_after_a_gap_is_measured_as_the_penalty():
    """A stand-in runtime that spins 3 ms more on a run that follows a pause of over 2 ms: the
    penalty is found (half of it at least, as the host may be busy), a back-to-back run is not slowed."""
    last = [time.perf_counter()]

    def run():
        now = time.perf_counter()
        until = now + (0.003 if now - last[0] > 0.002 else 0.0001)
        while time.perf_counter() < until:
            pass
        last[0] = time.perf_counter()

    record = idle.measure(run)
    assert record["gap_s"] == idle.IDLE_GAP_S and record["rounds"] >= idle.MIN_ROUNDS
    assert record["penalty_s"] > 0.0015 and record["factor"] > 5
    assert record["back_to_back_s"] < 0.002


def test_the_factor_is_never_below_one_and_absent_means_one():
    assert idle.record(1.0e-3, 1.1e-3, idle.IDLE_GAP_S, 7, "m")["factor"] == 1.0  # noise: faster after the gap
    assert idle.record(1.0e-3, 1.1e-3, idle.IDLE_GAP_S, 7, "m")["penalty_s"] == 0.0
    assert idle.factor({"provenance": {"idle": idle.record(2e-3, 1e-3, 0.005, 7, "m")}}) == pytest.approx(2.0)
    assert idle.factor({"provenance": {}}) == 1.0 and idle.factor({"predicted": True}) == 1.0
