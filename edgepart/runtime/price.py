"""The artifact held to its price: a tier's measured time against what the plan priced it at.

A tier is measurable here only when this host is the device the plan priced (device profile
`local`) and the tier's own artifact runs natively (not emulated, not an onnxruntime stand-in).
Otherwise the comparison would hold one machine's time against another's price: "not measurable here".
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgepart.compile.manifest import BuiltTier
from edgepart.errors import CheckFailedError, first_line
from edgepart.graph import feeds
from edgepart.profile import idle

LOCAL_DEVICE = "local"  # the device profile of this host (edgepart profile, make host-profile)
STRICT_RATIO = 1.5  # --strict: a tier measured over this many times its price fails
WARMUP_RUNS = 3
MIN_RUNS, MAX_RUNS, BUDGET_S = 5, 50, 1.0  # timed runs: at least 5, more while within about a second


def stand_in(entry: BuiltTier | None, runner: dict) -> str | None:
    """Why a tier's measured time says nothing about the plan's price for it, or None when it does:
    the plan priced another device than this host, or the tier ran emulated or as an onnxruntime
    stand-in for its artifact. A relay (no layers, no entry) has nothing to compare."""
    if entry is None:
        return None
    if runner.get("board"):  # the tier's own library on a farm board the user named for it
        return None
    if not runner.get("native", True):
        return f"ran as a stand-in ({runner['ran_with']}), not as device '{entry.device}' that the plan priced"
    if entry.device != LOCAL_DEVICE:
        return f"the plan priced device '{entry.device}'; this host ran the tier in its place"
    return None


def judged(measured_s: float | None, priced_s: float | None, why_not: str | None) -> dict[str, Any]:
    """A tier's time against its price: `ratio` (measured / priced) and `over` (above STRICT_RATIO),
    or `not_measurable` (why) with neither."""
    if why_not is not None or measured_s is None or not priced_s:
        return {"measured_s": measured_s, "priced_s": priced_s, "ratio": None, "over": False,
                "not_measurable": why_not or ("nothing priced" if not priced_s else "nothing measured")}
    ratio = measured_s / priced_s
    return {"measured_s": measured_s, "priced_s": priced_s, "ratio": ratio, "over": ratio > STRICT_RATIO,
            "not_measurable": None}


def time_on_board(runner, values: list[np.ndarray]) -> dict[str, Any]:
    """time_runner's measurement for a tier on a farm board: single runs after the idle gap, timed on
    the board by TVM (RPC round trips left out)."""
    runner.run(values)  # warm-up: upload of the inputs, first-run initialisation
    times = runner.timed(values, idle.IDLE_GAP_S, MIN_RUNS)
    return {"median_s": statistics.median(times), "runs": len(times), "warmup": 1,
            "clock": f"TVM time_evaluator on board {runner.board}, single runs each after "
                     f"{idle.IDLE_GAP_S * 1e3:g} ms idle"}


def time_runner(run, values: list[np.ndarray]) -> dict[str, Any]:
    """Median wall-clock seconds of `run(values)` after WARMUP_RUNS warm-ups, each timed run after
    the idle gap the price assumes (a tier's price includes its wake-up, edgepart.profile.idle): at
    least MIN_RUNS runs, more (up to MAX_RUNS) while the timed runs stay within BUDGET_S."""
    for _ in range(WARMUP_RUNS):
        run(values)
    times: list[float] = []
    while len(times) < MIN_RUNS or (len(times) < MAX_RUNS and sum(times) < BUDGET_S):
        time.sleep(idle.IDLE_GAP_S)
        start = time.perf_counter()
        run(values)
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "runs": len(times), "warmup": WARMUP_RUNS,
            "clock": f"wall clock (time.perf_counter) around the tier's run, one thread, each run after "
                     f"{idle.IDLE_GAP_S * 1e3:g} ms idle"}


def time_tier(build_dir: Path, entry: dict[str, Any], inputs: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """The artifact of one tier of a build timed on `inputs` (else seeded ones), where this host is its
    device and runs it natively; else why not (compile's report; nothing is started for a tier not
    measurable). A TVM library runs in this process only if compile's check ran it on the same
    inputs (edgepart.compile.tier_check): made-up inputs can divide an integer by zero."""
    from edgepart.runtime.runners import runner_for  # noqa: PLC0415 - onnxruntime / TVM's runtime

    tier = BuiltTier.of(entry, f"tier '{entry.get('name')}'")
    if tier.device != LOCAL_DEVICE:
        return judged(None, tier.priced_s, f"priced for device '{tier.device}', not at hand")
    runner = runner_for(build_dir, tier, emulators={})
    why = stand_in(tier, {"ran_with": runner.description, "native": runner.native})
    if why is not None:
        return judged(None, tier.priced_s, why)
    check = entry.get("backend_choice", {}).get("check", {})
    if tier.backend == "tvm" and not check.get("checked"):
        return judged(None, tier.priced_s, f"not timed: {check.get('why', 'the library was not checked')}")
    inputs = inputs or feeds.seeded((spec.name, spec.shape, spec.dtype) for spec in tier.inputs)
    try:
        timing = time_runner(runner.run, [inputs[spec.name] for spec in tier.inputs])
    except Exception as exc:  # the backend's own error types: made-up inputs can be invalid (a size, an index)
        first = first_line(exc, 200)
        return judged(None, tier.priced_s, f"not timed: the tier fails on seeded inputs ({first})")
    return {**judged(timing["median_s"], tier.priced_s, None), "timing": timing}


def over_price(tiers: dict[str, dict]) -> list[str]:
    """Names of the tiers measured over STRICT_RATIO times their price."""
    return [name for name, tier in tiers.items() if tier.get("over")]


def enforce(tiers: dict[str, dict], report: dict) -> None:
    """--strict: exit 1 (CheckFailedError) naming the first tier over its price, with every such tier counted."""
    over = over_price(tiers)
    if over:
        first = tiers[over[0]]
        more = f" ({len(over)} tiers over: {', '.join(over)})" if len(over) > 1 else ""
        raise CheckFailedError(f"tier '{over[0]}' ran {first['ratio']:.2f}x its price ({first['measured_s'] * 1e3:.3g} "
                               f"ms measured, {first['priced_s'] * 1e3:.3g} ms priced); --strict allows "
                               f"{STRICT_RATIO:g}x{more}", report)
