"""Prediction for this host calibrated on another model (`python -m bench.bench_calibration`).

Each example is measured (one thread); the local device profile is calibrated on each model in
turn and used to predict every other model end to end (sum of predicted layers + the measured
per-run overhead), compared with all models timed round-robin afterwards (the prediction scaled by
its calibration model's drift since profiling). Goal (issue #3): within 25% of the measured time.
Writes bench/results/calibration_local.json and prints the matrix.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgepart import graph
from edgepart.graph.sessions import named_model
from edgepart.hardware.devices import load_device
from edgepart.machine import host_description
from edgepart.profile import document, predict
from edgepart.profile.calibrate import calibrate
from edgepart.profile.measure import measure
from edgepart.profile.measure_timing import time_interleaved
from edgepart.profile.ort_profiler import RunOptions, sample_inputs

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "calibration_local.json"


def main() -> None:
    device, options = load_device("local"), RunOptions(threads=1, warmup=10, repeat=50)
    measured = {}
    for path in sorted((ROOT / "models").glob("*.onnx")):
        loaded = graph.load(path)
        result = measure(loaded, options)
        measured[path.stem] = (loaded, document.measured_document(loaded, device, options, result), result)
    # Every model timed round-robin with the others: predictions are compared at one machine state,
    # each scaled by how far its calibration model's time drifted since that model was profiled.
    now = dict(zip(measured, time_interleaved([(named_model(m[0]), sample_inputs(m[0])) for m in measured.values()],
                                              options)))
    rows = []
    for source, (loaded_a, doc_a, result_a) in measured.items():
        fitted = calibrate(device, loaded_a.graph, document.Profile.of(doc_a))
        drift = now[source].median / result_a.end_to_end.median
        for target, (loaded_b, _, result_b) in measured.items():
            if target == source:
                continue
            predicted = (predict.end_to_end(loaded_b.graph, fitted, "fp32") + result_b.overheads.run_s) * drift
            rows.append({"calibrated_on": source, "predicted": target, "predicted_s": predicted, "drift": drift,
                         "measured_s": now[target].median, "error": predicted / now[target].median - 1})
    RESULTS.write_text(json.dumps({"host": host_description(), "rows": rows}, indent=1) + "\n")
    names = list(measured)
    print("calibrated on \\ predicted " + " ".join(f"{n[:12]:>12s}" for n in names))
    for source in names:
        cells = {r["predicted"]: r["error"] for r in rows if r["calibrated_on"] == source}
        print(f"{source:26s}" + " ".join(f"{cells[n] * 100:+11.0f}%" if n in cells else f"{'-':>12s}"
                                          for n in names))
    within = sum(abs(r["error"]) <= 0.25 for r in rows)
    print(f"{within} of {len(rows)} predictions within 25% -> {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
