"""TVM artifacts against onnxruntime on this CPU, one thread, as ratios measured in one run
(`python -m bench.bench_tvm_vs_ort [TRIALS [MODEL...]]`).

Per example CNN: the untuned TVM library, and with TRIALS > 0 the MetaSchedule-tuned one (TRIALS
candidates per kernel; the tuning database under bench/results/tuning-db is reused, so a second run
tunes nothing), each timed against onnxruntime on the same inputs (median of 200 runs, the two
alternating, after warm-ups).
Goal (issue #6): within 1.5x of onnxruntime with at most 30 minutes of tuning per model.
Writes bench/results/tvm_vs_ort.json and prints a table.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from edgepart.compile import compilers, targets
from edgepart.compile.build import race

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "tvm_vs_ort.json"
MODELS = ["digits_cnn", "chain_cnn", "residual_cnn", "inception_cnn"]


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    names = sys.argv[2:] or MODELS
    preset = targets.resolve(host_preset())
    print(f"target preset {preset.name} ({preset.notes})")
    rows = []
    for name in names:
        model = ROOT / "models" / f"{name}.onnx"
        for tune in ([0, trials] if trials else [0]):
            compiler = compilers.TvmCompiler(tune, ROOT / "bench" / "results" / "tuning-db")
            with tempfile.TemporaryDirectory() as tmp:
                started = time.perf_counter()
                artifact = compiler.compile(model, preset, Path(tmp), name)
                build_s = time.perf_counter() - started
                tvm_s, ort_s = race(artifact.path, model, runs=200)
            tuning = artifact.details.get("tuning") or {}
            rows.append({"model": name, "target": preset.name, "trials_per_kernel": tune,
                         "tvm_ms": tvm_s * 1e3, "onnxruntime_ms": ort_s * 1e3,
                         "ratio": tvm_s / ort_s, "compile_s": build_s, "tuning_s": tuning.get("seconds", 0.0),
                         "kernels_tuned_now": tuning.get("tuned_now", 0), "layout": tuning.get("layout"),
                         "kernels_by_trials": tuning.get("kernels_by_trials")})
            r = rows[-1]
            print(f"{name:15s} trials {tune:4d}  tvm {r['tvm_ms']:9.3f} ms  ort {r['onnxruntime_ms']:7.3f} ms  "
                  f"ratio {r['ratio']:6.1f}x  compile {build_s:6.1f} s (tuning {r['tuning_s']:.1f} s)", flush=True)
    results = RESULTS if not trials else RESULTS.with_name(f"tvm_vs_ort_tuned_{trials}.json")
    # Rows of models not run this time are kept: tuning one model takes a quarter of an hour here.
    kept = [r for r in (json.loads(results.read_text())["rows"] if results.exists() else []) if r["model"] not in names]
    results.write_text(json.dumps({"threads": 1, "rows": kept + rows}, indent=1) + "\n")
    print(f"-> {results.relative_to(ROOT)}")


def host_preset() -> str:
    """The x86-64 preset with this CPU's vector ISA: onnxruntime picks its kernels for the CPU at run
    time, so TVM compiled for the SSE2 baseline would be compared with one hand tied."""
    flags = set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").exists() else set()
    return "x86-64-v4" if "avx512f" in flags else "x86-64-v3" if {"avx2", "fma"} <= flags else "x86-64"


if __name__ == "__main__":
    main()
