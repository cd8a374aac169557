"""What a run costs after the runtime waited: the idle penalty, which the plan prices in.

Per-layer times are measured hot, run after run. In use a tier waits between its requests (for the
other tiers, the links, the client: 3-5 ms in a two-tier run on this host) and its next run is
slower, as caches, predictors and clocks cool: 0.1-0.6 ms here, for a sub-millisecond tier 20-50%
of its time, for a ResNet tier 1-3% (bench/results/promise.md). It is time passing, not sleeping:
spinning through the gap costs the same. The penalty grows with the gap and saturates around 20 ms;
IDLE_GAP_S is the gap the price assumes, recorded in the profile.

Each round: a run after the gap, then HOT_AFTER runs at once, the last of them timed hot; the two
measured together, so a shared host's drift cancels. The plan scales every layer of the profile by
after-gap / hot (`factor`): a tier cut out of the model pays its layers' share of the penalty. On
two-tier splits of MobileNetV3-Small and ShuffleNetV2 the shares matched the tiers' measured
penalties, where charging each tier the whole model's penalty priced a small tier 1.3x too high.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

IDLE_GAP_S = 0.005
MIN_ROUNDS, MAX_ROUNDS, BUDGET_S = 7, 40, 1.5  # rounds timed: at least 7, more while within about 1.5 s
HOT_AFTER = 3  # runs after the cold one; the first of them is still partly cold (caches refilling)


def measure(run: Callable[[], object], gap_s: float = IDLE_GAP_S) -> dict[str, Any]:
    """The idle penalty of `run` (already warm): its `provenance.idle` record in a profile."""
    cold: list[float] = []
    hot: list[float] = []
    spent = 0.0
    while len(cold) < MIN_ROUNDS or (len(cold) < MAX_ROUNDS and spent < BUDGET_S):
        time.sleep(gap_s)
        start = time.perf_counter()
        run()
        cold.append(time.perf_counter() - start)
        for _ in range(HOT_AFTER):
            middle = time.perf_counter()
            run()
        end = time.perf_counter()
        hot.append(end - middle)
        spent += gap_s + end - start
    return record(statistics.median(cold), statistics.median(hot), gap_s, len(cold),
                  f"a run after sleeping the gap, then {HOT_AFTER} at once, the last of them timed; "
                  "medians over the rounds")


def record(after_gap_s: float, back_to_back_s: float, gap_s: float, rounds: int, method: str) -> dict[str, Any]:
    """profile.provenance.idle (docs/file-formats.md)."""
    factor = max(after_gap_s / back_to_back_s, 1.0) if back_to_back_s > 0 else 1.0
    return {"gap_s": gap_s, "after_gap_s": after_gap_s, "back_to_back_s": back_to_back_s,
            "penalty_s": max(after_gap_s - back_to_back_s, 0.0), "factor": factor, "rounds": rounds,
            "method": method}


def factor(profile: dict) -> float:
    """What the plan multiplies a profile's layer times by: 1 where it measured no idle penalty
    (a prediction, or a profile made before edgepart measured it)."""
    measured = profile.get("provenance", {}).get("idle")
    return float(measured["factor"]) if measured else 1.0
