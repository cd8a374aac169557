"""How long `sensitivity` takes on a real-size model, and how far its estimates are from whole-model
runs (`python -m bench.bench_sensitivity MODEL.onnx [--data NPZ] [--samples N] [--max-seconds S]
[--skip-exact]`), issue #19.

Runs the measurement twice on the same inputs (the first N of --data, else N seeded ones), each with
a cache of its own: `--exact` (every choice run on the whole model) and the default (probes run, the
other choices estimated when running all of them does not fit --max-seconds). Reports both times
and, per estimated choice with a run drop above 1e-7, the ratio estimate / run. `--skip-exact` times
the default alone (a ViT-B/16's exact run takes hours). Goal (issue #19): a MiniLM-sized sentence
encoder in <= 3 minutes on 16 samples, a ViT-B/16-sized model in <= 15 minutes, the estimates'
error reported.

Models of the results: `minilm` is the real all-MiniLM-L6-v2 with 16 calibration sentences
(bench/export/minilm.py); `encoder` a random-weight model of its size (a 6-layer
nn.TransformerEncoder, width 384, 12 heads, feed-forward 1536, 128 tokens, a 30522-token embedding,
mean-pooled and normalised; torch 2.14, torch.onnx.export at opset 17); `vit_b_16` torchvision's
(weights=None, seed 0; see bench/bench_zoo.py).
Writes bench/results/sensitivity_<model>.json and .md and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgepart import graph
from edgepart.compress import data, sensitivity

ROOT = Path(__file__).resolve().parents[1]
GOALS_S = {"MiniLM-sized": 180, "ViT-B/16-sized": 900}
FLOOR = 1e-7  # run drops below this are float noise against which no ratio means anything


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, nargs="?")
    parser.add_argument("--data", type=Path, help="calibration data (.npz), else seeded inputs")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=sensitivity.EXACT_SECONDS)
    parser.add_argument("--skip-exact", action="store_true", help="time the default run only")
    args = parser.parse_args()
    if args.model is None or not args.model.is_file():
        print("bench_sensitivity: give an ONNX model (e.g. a MiniLM-sized encoder)", file=sys.stderr)
        return
    loaded = graph.load(args.model)
    dataset = (data.load(str(args.data), loaded).head(args.samples) if args.data
               else data.seeded(loaded, args.samples))
    runs = {}
    modes = (("estimated", False),) if args.skip_exact else (("exact", True), ("estimated", False))
    for label, exact in modes:
        with tempfile.TemporaryDirectory() as cache:
            os.environ["EDGEPART_CACHE"] = cache
            started = time.perf_counter()
            runs[label] = sensitivity.measure(loaded, dataset, max_seconds=None if exact else args.max_seconds,
                                              exact=exact)
            runs[label]["wall_s"] = time.perf_counter() - started
        print(f"{label:10s} {runs[label]['wall_s']:7.1f} s  coverage {runs[label]['coverage']}", flush=True)
    ratios = _ratios(runs["estimated"], runs["exact"]) if "exact" in runs else []
    result = {"model": args.model.stem, "data": str(args.data.name) if args.data else "seeded",
              "samples": len(dataset), "layers": len(loaded.graph.layers),
              "max_seconds": args.max_seconds, "choices": runs["estimated"]["coverage"]["choices"],
              "exact_s": runs["exact"]["wall_s"] if "exact" in runs else None,
              "estimated_s": runs["estimated"]["wall_s"],
              "probe_every": runs["estimated"]["coverage"].get("probe_every", 1),
              "estimates_compared": len(ratios), **_spread(ratios)}
    out = ROOT / "bench" / "results" / f"sensitivity_{args.model.stem}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(_table(result, args))
    print(_table(result, args))


def _ratios(estimated: dict, exact: dict) -> list[float]:
    """estimate / run for every estimated choice whose run drop is above FLOOR."""
    pairs = [(result, exact["layers"][name][precision]) for name, entry in estimated["layers"].items()
             for precision, result in entry.items()]
    pairs += [(entry["codecs"][codec], exact["tensors"][name]["codecs"][codec])
              for name, entry in estimated["tensors"].items() for codec in sensitivity.LOSSY_CODECS]
    return [max(guess["drop"], 0.0) / run["drop"] for guess, run in pairs
            if guess.get("estimated") and run["drop"] > FLOOR]


def _spread(ratios: list[float]) -> dict:
    if not ratios:
        return {}
    array = np.array(ratios)
    return {"ratio_median": statistics.median(ratios), "ratio_p10": float(np.percentile(array, 10)),
            "ratio_p90": float(np.percentile(array, 90)),
            "within_2x_share": float(np.mean((array >= 0.5) & (array <= 2.0)))}


def _table(result: dict, args) -> str:
    spread = (f"{result['ratio_median']:.2f}x (10th-90th percentile {result['ratio_p10']:.2f}-"
              f"{result['ratio_p90']:.2f}x; within 2x: {100 * result['within_2x_share']:.0f}%)"
              if result.get("ratio_median") is not None else "nothing to compare")
    data_option = f" --data {args.data}" if args.data else ""
    exact = "skipped" if result["exact_s"] is None else f"{result['exact_s']:.0f}"
    return "\n".join([
        f"# sensitivity at scale: {result['model']} ({result['layers']} layers, {result['samples']} samples "
        f"of {result['data']})", "",
        f"`python -m bench.bench_sensitivity {args.model}{data_option} --samples {args.samples} --max-seconds "
        f"{args.max_seconds:g}{' --skip-exact' if args.skip_exact else ''}`",
        "", "| mode | seconds | choices |", "|---|---:|---:|",
        f"| every choice run (--exact) | {exact} | {result['choices']} |",
        f"| default (probes every {result['probe_every']} groups, the rest estimated) | {result['estimated_s']:.0f} | "
        f"{result['choices']} |", "",
        f"Estimate / run over {result['estimates_compared']} estimated choices with a run drop above {FLOOR:g}: "
        f"median {spread}.", "",
        f"Goals (issue #19): MiniLM-sized <= {GOALS_S['MiniLM-sized']} s, ViT-B/16-sized <= "
        f"{GOALS_S['ViT-B/16-sized']} s on 16 samples, with the estimates' error reported.", ""])


if __name__ == "__main__":
    main()
