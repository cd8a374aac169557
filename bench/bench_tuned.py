"""`compile --tune` from an empty tuning database against onnxruntime, one thread, on this CPU
(`python -m bench.bench_tuned [MODEL.onnx] [--trials N]`; default $EDGEPART_ZOO/resnet50.onnx).

For one model: the untuned build; the tuned build with a fresh, empty MetaSchedule database (its
wall time is the tuning cost a user pays the first time); the same tuned build again with that
database (nothing left to tune: the reuse every later compile gets); each library timed against
onnxruntime on the same seeded inputs, alternating (bench_tvm_vs_ort.alternate), outputs compared.
Goal (issue #16): ResNet-50 tuned <= 1.0x onnxruntime after <= 30 minutes of tuning.
Writes bench/results/tuned_<model>.json and .md and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bench.bench_tvm_vs_ort import alternate, host_preset
from edgepart.graph import feeds as seeded_feeds
from edgepart.graph import sessions
from edgepart.toolchain import compilers, targets

ROOT = Path(__file__).resolve().parents[1]
GOAL_RATIO, GOAL_TUNING_S = 1.0, 30 * 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, nargs="?",
                        default=Path(os.environ.get("EDGEPART_ZOO", "")) / "resnet50.onnx"
                        if os.environ.get("EDGEPART_ZOO") else None)
    parser.add_argument("--trials", type=int, default=64, help="candidates per heavy kernel (compile --tune N)")
    parser.add_argument("--pairs", type=int, default=60, help="alternating timing rounds per build")
    args = parser.parse_args()
    if args.model is None or not args.model.is_file():
        print("bench_tuned: no model (give an ONNX file, or set EDGEPART_ZOO to a folder with resnet50.onnx)",
              file=sys.stderr)
        return
    os.environ["TVM_NUM_THREADS"] = "1"
    preset = targets.resolve(host_preset())
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgepart-empty-tuning-db-") as database:
        for label, trials in (("untuned", 0), ("tuned, empty database", args.trials),
                              ("tuned again, database reused", args.trials)):
            rows.append(build_and_time(label, args.model, preset, trials, Path(database), args.pairs))
            print(f"{label:30s} compile {rows[-1]['compile_s']:7.1f} s  tvm {rows[-1]['tvm_ms']:8.2f} ms  "
                  f"ort {rows[-1]['onnxruntime_ms']:8.2f} ms  ratio {rows[-1]['ratio']:.3f}x", flush=True)
    tuned = rows[1]
    result = {"model": args.model.stem, "target": preset.name, "threads": 1, "trials": args.trials,
              "goal": {"ratio": GOAL_RATIO, "tuning_s": GOAL_TUNING_S},
              "met": tuned["ratio"] <= GOAL_RATIO and tuned["compile_s"] <= GOAL_TUNING_S, "rows": rows}
    out = ROOT / "bench" / "results" / f"tuned_{args.model.stem}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(table(result, args))
    print(f"tuned {tuned['ratio']:.3f}x onnxruntime after {tuned['compile_s'] / 60:.1f} min "
          f"(goal <= {GOAL_RATIO}x within {GOAL_TUNING_S // 60} min): {'met' if result['met'] else 'NOT MET'} "
          f"-> {out.relative_to(ROOT)}")


def build_and_time(label: str, model: Path, preset, trials: int, database: Path, pairs: int) -> dict:
    from edgepart.toolchain.tvm_tier import TvmTier  # noqa: PLC0415 - TVM's runtime only

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        artifact = compilers.TvmCompiler(trials, database).compile(model, preset, Path(tmp), model.stem)
        compile_s = time.perf_counter() - started
        session = ort.InferenceSession(str(model), sessions.ort_options(), providers=["CPUExecutionProvider"])
        feeds = seeded_feeds.for_session(session)
        got = TvmTier(artifact.path).run(list(feeds.values()))
        want = session.run(None, feeds)
        error = max(float(np.abs(g - w).max() / max(np.abs(w).max(), 1e-30)) for g, w in zip(got, want))
        tvm_s, ort_s = alternate(artifact.path, model, runs=pairs)
    tuning = artifact.details.get("tuning") or {}
    return {"build": label, "compile_s": compile_s, "tvm_ms": tvm_s * 1e3, "onnxruntime_ms": ort_s * 1e3,
            "ratio": tvm_s / ort_s, "max_rel_error": error, "pairs": pairs,
            "kernels": artifact.details.get("kernels"),
            "tuning": {k: tuning.get(k) for k in ("tasks", "tuned_now", "from_database", "kernels_by_trials",
                                                  "seconds", "layout")} if tuning else None}


def table(result: dict, args) -> str:
    lines = [f"# compile --tune from an empty database: {result['model']} ({result['target']}, one thread)", "",
             f"`python -m bench.bench_tuned {args.model} --trials {args.trials} --pairs {args.pairs}`; "
             "times are medians of rounds alternating with onnxruntime in one process; compile includes "
             "tuning.", "",
             "| build | compile s | kernels tuned now / from database | TVM ms | ORT ms | TVM / ORT | max rel err |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in result["rows"]:
        tuning = row["tuning"] or {}
        tuned = f"{tuning.get('tuned_now', 0)} / {tuning.get('from_database', 0)}" if tuning else "-"
        lines.append(f"| {row['build']} | {row['compile_s']:.1f} | {tuned} | {row['tvm_ms']:.2f} | "
                     f"{row['onnxruntime_ms']:.2f} | {row['ratio']:.3f}x | {row['max_rel_error']:.1e} |")
    tuned = result["rows"][1]
    lines += ["", f"Goal: tuned <= {GOAL_RATIO}x onnxruntime after <= {GOAL_TUNING_S // 60} minutes of tuning "
              f"from an empty database: **{'met' if result['met'] else 'not met'}** ({tuned['ratio']:.3f}x after "
              f"{tuned['compile_s'] / 60:.1f} min).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
