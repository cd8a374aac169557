"""TVM artifacts against onnxruntime on this CPU, one thread, as ratios measured in one run
(`python -m bench.bench_tvm_vs_ort [TRIALS [MODEL...]]`).

Per example CNN: the untuned TVM library, and with TRIALS > 0 the MetaSchedule-tuned one (TRIALS
candidates per kernel; the tuning database under bench/results/tuning-db is reused, so a second run
tunes nothing), each timed against onnxruntime on the same inputs (median of 200 runs, the two
alternating, after warm-ups).
Goal (issue #6): within 1.5x of onnxruntime with at most 30 minutes of tuning per model.
Writes bench/results/tvm_vs_ort.json and prints a table.

`python -m bench.bench_tvm_vs_ort zoo PATH... [--before NAME,...] [--previous FILE]`: third-party
models (ONNX files, or folders of them; see bench_zoo for how they are exported), untuned, through
edgepart's compile path as a tier gets it (convolutions and matrix products in the kernel library),
for this CPU's vector ISA; the models named in --before also built with TVM's kernels alone (the
build before issue #16; a few seconds a run); --previous: an earlier zoo JSON whose ratios are
shown beside (e.g. tvm_vs_ort_zoo_before_winograd.json). Goal (issue #16): geo-mean <= 2.0x
onnxruntime, no model over 4x.
Writes bench/results/tvm_vs_ort_zoo.json and .md.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgepart.graph import feeds as seeded_feeds
from edgepart.graph import sessions
from edgepart.toolchain import compilers, targets

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "tvm_vs_ort.json"
MODELS = ["digits_cnn", "chain_cnn", "residual_cnn", "inception_cnn"]


def main() -> None:
    if sys.argv[1:2] == ["zoo"]:
        return zoo(sys.argv[2:])
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
                tvm_s, ort_s = alternate(artifact.path, model, runs=200)
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


ZOO_RESULTS = ROOT / "bench" / "results" / "tvm_vs_ort_zoo.json"
# Timed pairs per model: enough for a stable median, bounded so ViT-B/16 (~0.4 s a run) stays short.
PAIRS_BUDGET_S, MIN_PAIRS, MAX_PAIRS, BEFORE_PAIRS = 20.0, 5, 30, 3


def zoo(args: list[str]) -> None:
    before, previous = set(), {}
    if "--before" in args:
        at = args.index("--before")
        before, args = set(args[at + 1].split(",")), args[:at] + args[at + 2:]
    if "--previous" in args:
        at = args.index("--previous")
        previous = {r["model"]: r for r in json.loads(Path(args[at + 1]).read_text())["rows"]}
        previous_name, args = Path(args[at + 1]).name, args[:at] + args[at + 2:]
    paths = sorted((p for arg in args for p in ([Path(arg)] if arg.endswith(".onnx") else Path(arg).glob("*.onnx"))),
                   key=lambda p: p.stem)
    os.environ["TVM_NUM_THREADS"] = "1"  # leftover TVM kernels are serial anyway; OpenBLAS is the serial build
    preset = targets.resolve(host_preset())
    print(f"target preset {preset.name} ({preset.notes}), untuned, one thread")
    rows = []
    for path in paths:
        row = {"model": path.stem, "target": preset.name,
               **_zoo_build(path, preset, compilers.TvmCompiler(), pairs=None)}
        if path.stem in before:
            stock = _zoo_build(path, preset, compilers.TvmCompiler(kernels=False), pairs=BEFORE_PAIRS)
            row["before"] = {k: stock[k] for k in ("tvm_ms", "onnxruntime_ms", "ratio", "compile_s")}
        elif path.stem in previous and "before" in previous[path.stem]:
            row["before"] = {**previous[path.stem]["before"], "from": previous_name}
        if path.stem in previous:
            row["previous"] = {"ratio": previous[path.stem]["ratio"], "from": previous_name}
        rows.append(row)
        print(f"{row['model']:26s} tvm {row['tvm_ms']:8.2f} ms  ort {row['onnxruntime_ms']:8.2f} ms  "
              f"ratio {row['ratio']:5.2f}x  offloaded {row['offloaded_calls']:4d}  max err {row['max_rel_error']:.1e}"
              + (f"  before {row['before']['ratio']:.1f}x" if "before" in row else ""), flush=True)
    ratios = [r["ratio"] for r in rows]
    summary = {"geo_mean_ratio": math.exp(sum(map(math.log, ratios)) / len(ratios)), "worst_ratio": max(ratios)}
    ZOO_RESULTS.write_text(json.dumps({"threads": 1, "target": preset.name, **summary, "rows": rows}, indent=1) + "\n")
    ZOO_RESULTS.with_suffix(".md").write_text(_zoo_table(rows, summary, preset, previous and previous_name))
    print(f"geo-mean {summary['geo_mean_ratio']:.2f}x, worst {summary['worst_ratio']:.2f}x "
          f"-> {ZOO_RESULTS.relative_to(ROOT)}")


def _zoo_build(path: Path, preset, compiler, pairs: int | None) -> dict:
    """Compile one model as a tier, check its outputs against onnxruntime, time the two alternately
    (medians of `pairs` rounds; None: as many as fit PAIRS_BUDGET_S)."""
    from edgepart.toolchain.tvm_tier import TvmTier  # noqa: PLC0415 - TVM's runtime only

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        artifact = compiler.compile(path, preset, Path(tmp), path.stem)
        compile_s = time.perf_counter() - started
        session = ort.InferenceSession(str(path), sessions.ort_options(), providers=["CPUExecutionProvider"])
        feeds = seeded_feeds.for_session(session)
        started = time.perf_counter()
        got = TvmTier(artifact.path).run(list(feeds.values()))
        first_s = time.perf_counter() - started
        want = session.run(None, feeds)
        error = max(float(np.abs(g - w).max() / max(np.abs(w).max(), 1e-30)) for g, w in zip(got, want))
        if pairs is None:
            pairs = int(min(MAX_PAIRS, max(MIN_PAIRS, PAIRS_BUDGET_S / (2 * first_s))))
        tvm_s, ort_s = alternate(artifact.path, path, runs=pairs)
    kernels = artifact.details.get("kernels", {})
    return {"tvm_ms": tvm_s * 1e3, "onnxruntime_ms": ort_s * 1e3, "ratio": tvm_s / ort_s, "pairs": pairs,
            "max_rel_error": error, "compile_s": compile_s, "megabytes": artifact.details["bytes"] / 1e6,
            "kernel_library": kernels.get("library"), "offloaded_calls": kernels.get("offloaded_calls", 0),
            "winograd_calls": kernels.get("winograd_calls", 0)}


def _zoo_table(rows: list[dict], summary: dict, preset, previous: str | None) -> str:
    header = ["| model | ORT ms | TVM ms | TVM / ORT | previous run | before: TVM / ORT | offloaded calls "
              "(Winograd) | max rel err | compile s | .so MB |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines = [f"| {r['model']} | {r['onnxruntime_ms']:.2f} | {r['tvm_ms']:.2f} | {r['ratio']:.2f}x | "
             + (f"{r['previous']['ratio']:.2f}x" if "previous" in r else "-") + " | "
             + (f"{r['before']['ratio']:.1f}x ({r['before']['tvm_ms']:.0f} ms)" if "before" in r else "-")
             + f" | {r['offloaded_calls']} ({r.get('winograd_calls', 0)}) | {r['max_rel_error']:.1e} | "
               f"{r['compile_s']:.0f} | {r['megabytes']:.0f} |"
             for r in rows]
    return "\n".join([
        f"# Untuned TVM tiers against onnxruntime on torchvision models ({preset.name}, one thread)", "",
        f"Written by `python -m bench.bench_tvm_vs_ort zoo ...` on {time.strftime('%Y-%m-%d')}; rows in "
        "`tvm_vs_ort_zoo.json`. TVM: the tier library `edgepart compile` builds, no tuning (convolutions and "
        "matrix products in edgepart's kernel library, OpenBLAS; 3x3 stride-1 convolutions of 32+ channels "
        "as Winograd F(4x4, 3x3), counted in brackets). Previous run: "
        + (f"`{previous}`." if previous else "none given.") + " Before: the same model built with TVM's "
        "kernels alone, as every CPU tier was before issue #16. Each ratio: medians of alternating runs "
        "in one process; max rel err: largest |TVM - ORT| over the largest |ORT| output. Earlier "
        "measurements of the before build: issue #16's table (ResNet-18 112x, MobileNetV2 24-50x, "
        "x86-64-v4) and tvm_vs_ort.md (the example CNNs 9-78x).", "",
        *header, *lines, "",
        f"Geo-mean TVM / ORT: **{summary['geo_mean_ratio']:.2f}x**, worst **{summary['worst_ratio']:.2f}x** "
        f"over {len(rows)} models.", ""])


def alternate(library: Path, model: Path, runs: int) -> tuple[float, float]:
    """Median seconds of the TVM library and of onnxruntime (one thread) on the same seeded inputs,
    run alternately after two warm-up rounds, so a shared host changing speed affects both alike."""
    from edgepart.toolchain.tvm_tier import TvmTier  # noqa: PLC0415 - TVM's runtime only

    session = ort.InferenceSession(str(model), sessions.ort_options(), providers=["CPUExecutionProvider"])
    feeds = seeded_feeds.for_session(session)
    tier, values = TvmTier(library), list(feeds.values())
    contenders = [lambda: tier.run(values), lambda: session.run(None, feeds)]
    times: list[list[float]] = [[], []]
    for round_ in range(runs + 2):
        for function, samples in zip(contenders, times):
            start = time.perf_counter()
            function()
            if round_ >= 2:
                samples.append(time.perf_counter() - start)
    return float(np.median(times[0])), float(np.median(times[1]))


def host_preset() -> str:
    """The x86-64 preset with this CPU's vector ISA: onnxruntime picks its kernels for the CPU at run
    time, so TVM compiled for the SSE2 baseline would be compared with one hand tied."""
    flags = set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").exists() else set()
    return "x86-64-v4" if "avx512f" in flags else "x86-64-v3" if {"avx2", "fma"} <= flags else "x86-64"


if __name__ == "__main__":
    main()
