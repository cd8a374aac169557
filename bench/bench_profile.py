"""Fidelity of per-layer profiles on this host (`python -m bench.bench_profile`).

For each example model, one thread: (sum of layer medians + per-run overhead) against the measured
end-to-end median, and 10 random contiguous segments cut out and timed alone, predicted from the
layer times with one calibration factor per model. Goals (issue #3): sum within 10%, segment median
error <= 5%, profiling the largest example < 60 s. Writes bench/results/profile_local.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from edgepart import graph
from edgepart.machine import host_description
from edgepart.profile.measure import measure
from edgepart.profile.ort_profiler import RunOptions

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "profile_local.json"


def main() -> None:
    rows = []
    for path in sorted((ROOT / "models").glob("*.onnx")):
        loaded = graph.load(path)
        started = time.perf_counter()
        measured = measure(loaded, RunOptions(threads=1, warmup=10, repeat=50), segments=10)
        errors = np.abs([s["error"] for s in measured.segments])
        rows.append({
            "model": path.stem, "layers": len(loaded.graph.layers), "profile_seconds": time.perf_counter() - started,
            "end_to_end_ms": measured.end_to_end.median * 1e3, "sum_of_layers_ms": measured.sum_of_medians * 1e3,
            "run_overhead_us": measured.overheads.run_s * 1e6, "sum_error": measured.sum_error,
            "calibration_factor": measured.calibration, "segment_median_abs_error": float(np.median(errors)),
            "segment_max_abs_error": float(errors.max()),
        })
    RESULTS.write_text(json.dumps({"host": host_description(), "threads": 1, "rows": rows}, indent=1) + "\n")
    print(f"{'model':22s} {'layers':>6s} {'e2e ms':>8s} {'sum err':>8s} {'seg med':>8s} {'seg max':>8s} {'took s':>7s}")
    for r in rows:
        print(f"{r['model']:22s} {r['layers']:6d} {r['end_to_end_ms']:8.3f} {r['sum_error'] * 100:+7.1f}% "
              f"{r['segment_median_abs_error'] * 100:7.1f}% {r['segment_max_abs_error'] * 100:7.1f}% "
              f"{r['profile_seconds']:7.1f}")
    print(f"-> {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
