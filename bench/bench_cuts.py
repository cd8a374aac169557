"""Cut fuzzing: seeded random valid cuts of real models, every tier compiled for every target.

`python -m bench.bench_cuts ZOO_DIR --cuts 200 [--targets x86-64,aarch64,cuda-sm90] [--qemu-every 10]`
(ZOO_DIR defaults to $EDGEPART_ZOO; `make fuzz-cuts ZOO=DIR`)

For each model in ZOO_DIR (bench/export/zoo.py's torchvision families and bench/export/minilm.py's
BERT-style encoder, int64 token ids and an attention mask), cuts are drawn round robin, each 2 or
3 tiers: a random topological order of the layers (Kahn's algorithm choosing at random among the
ready layers, so cuts fall inside branches too) split at random points, so data only flows up.
The tiers are cut as compile cuts them (edgepart.compile.cut) and each is compiled for each target
with TVM as compile does, then checked as compile checks (edgepart.compile.tier_check): x86-64
tiers run beside onnxruntime on the same sub-model (relative error <= 1e-4), on the tier's inputs
computed from one sample of the model (MODEL_calib.npz beside it, else seeded inputs); every
--qemu-every-th cut's aarch64 tiers run under qemu against onnxruntime; CUDA tiers are built with
nvcc and their runtime functions checked. Results append to bench/results/cuts.jsonl as each cut
finishes (a rerun skips the cuts already there); the table is bench/results/cuts.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from edgepart import graph
from edgepart.compile import cut, tier_check
from edgepart.compress import data
from edgepart.errors import ToolError
from edgepart.graph import feeds as seeded_feeds
from edgepart.graph.compare import output_errors
from edgepart.toolchain import compilers, targets

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TARGETS = ("x86-64", "aarch64", "cuda-sm90")
TIER_NAMES = ("device", "edge", "cloud")


@dataclass(frozen=True)
class _Tier:
    name: str


@dataclass(frozen=True)
class Placement:
    """What edgepart.compile.cut reads of a plan: the tiers, in order, and each layer's tier."""

    tiers: tuple[_Tier, ...]
    where: dict[str, str]

    def tier_of(self, layer: str) -> str:
        return self.where[layer]


def draw(layer_graph, tiers: int, rng: np.random.Generator) -> Placement:
    """A random valid placement of the layers on `tiers` tiers, each holding at least one layer."""
    layers = [n.name for n in layer_graph.layers]
    members = set(layers)
    producers = {name: {layer_graph.tensors[t].producer for t in layer_graph.node(name).inputs} & members
                 for name in layers}
    readers: dict[str, list[str]] = {name: [] for name in layers}
    for name, before in producers.items():
        for p in before:
            readers[p].append(name)
    waiting = {name: len(before) for name, before in producers.items()}
    ready = sorted(name for name, count in waiting.items() if count == 0)
    order = []
    while ready:
        chosen = ready.pop(int(rng.integers(len(ready))))
        order.append(chosen)
        for r in readers[chosen]:
            waiting[r] -= 1
            if waiting[r] == 0:
                ready.append(r)
    points = sorted(rng.choice(np.arange(1, len(order)), size=tiers - 1, replace=False).tolist())
    names = TIER_NAMES[:tiers] if tiers == 3 else ("device", "cloud")
    where = {layer: names[sum(i >= p for p in points)] for i, layer in enumerate(order)}
    return Placement(tuple(_Tier(n) for n in names), where)


def model_sample(loaded, path: Path) -> dict[str, np.ndarray]:
    """One sample of the model's inputs: the first of MODEL_calib.npz beside it, else seeded."""
    calib = path.with_name(f"{path.stem}_calib.npz")
    if calib.is_file():
        return next(data.load(str(calib), loaded, "calibration").samples())
    return seeded_feeds.for_graph(loaded.graph, 0)


def tier_inputs(loaded, tier_cuts, sample: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Per tier, its inputs on `sample`, computed by onnxruntime on the whole model."""
    inner = sorted({name for c in tier_cuts for name in c.inputs} - set(sample))
    dataset = data.Dataset("sample", {k: v[None] for k, v in sample.items()}, None)
    values = {**sample, **({k: v[0] for k, v in data.run(loaded.model, dataset, inner).items()} if inner else {})}
    return {c.tier: {name: values[name] for name in c.inputs} for c in tier_cuts}


def check_cut(loaded, path: Path, placement: Placement, target_names: list[str], qemu: bool,
              work: Path) -> dict:
    """Every tier of the cut compiled and checked for every target; the record of it."""
    tier_cuts = cut.cut(loaded, placement)
    inputs = tier_inputs(loaded, tier_cuts, model_sample(loaded, path))
    record = {"tiers": [{"name": c.tier, "layers": len(c.layers), "inputs": list(c.inputs)} for c in tier_cuts],
              "targets": {}}
    for target in target_names:
        preset = targets.resolve(target, "--targets")
        results = []
        for tier_cut in tier_cuts:
            folder = work / target / tier_cut.tier
            folder.mkdir(parents=True)
            submodel = folder / "submodel.onnx"
            onnx.save(tier_cut.model, submodel)
            results.append(_compiled_and_checked(submodel, preset, inputs[tier_cut.tier], qemu))
        record["targets"][target] = results
    return record


def _compiled_and_checked(submodel: Path, preset, sample: dict, qemu: bool) -> dict:
    started = time.perf_counter()
    try:
        artifact = compilers.TvmCompiler().compile(submodel, preset, submodel.parent, "model")
    except ToolError as failed:
        return {"compiled": False, "error": str(failed)[:400], "seconds": time.perf_counter() - started,
                "operators": (failed.details or {}).get("operators", [])}
    result = {"compiled": True, "seconds": time.perf_counter() - started,
              "elf_machine": artifact.details.get("elf_machine"), "device_code": artifact.details.get("device_code")}
    try:
        result["check"] = tier_check.check(artifact, submodel, preset, "fp32", sample)
    except tier_check.Disqualified as failed:
        result["check"] = {"checked": True, "failed": str(failed)[:400], "operators": failed.details["operators"]}
    if qemu and preset.device == "cpu" and preset.elf_machine == "AArch64":
        result["qemu"] = _under_qemu(artifact.path, submodel, sample)
    return result


def _under_qemu(library: Path, submodel: Path, sample: dict) -> dict:
    from edgepart.graph import sessions
    from edgepart.runtime.emulate import QemuRunner

    graph_proto = onnx.load(str(submodel), load_external_data=False).graph
    values = [sample[v.name] for v in graph_proto.input]
    names = [v.name for v in graph_proto.output]
    reference = sessions.session(str(submodel)).run(None, dict(zip([v.name for v in graph_proto.input], values)))
    try:
        outputs = QemuRunner(library, submodel.parent.name).run(values)
    except ToolError as failed:
        return {"ran": False, "error": str(failed)[:300]}
    errors = output_errors(names, [dict(zip(names, reference))], [dict(zip(names, outputs))])
    worst = [e["relative_error"] for e in errors.values()]
    return {"ran": True, "relative_error": None if None in worst else max(worst, default=0.0)}


def outcome(result: dict) -> str:
    """compiled-and-matched, compiled (not run here), mismatch, or refused (a compile failure)."""
    if not result["compiled"]:
        return "refused"
    check = result.get("check", {})
    if check.get("failed"):
        return "mismatch"
    qemu = result.get("qemu")
    if qemu and (not qemu["ran"] or qemu["relative_error"] is None or qemu["relative_error"] > 1e-4):
        return "mismatch"
    return "matched" if check.get("checked") or (qemu and qemu["ran"]) else "compiled"


def worst_outcomes(rows: list[dict], target: str) -> collections.Counter:
    """Per outcome, the cuts whose worst tier on `target` had it."""
    counts: collections.Counter = collections.Counter()
    for r in rows:
        if target in r["targets"]:
            outcomes = {outcome(t) for t in r["targets"][target]}
            counts[next(o for o in ("refused", "mismatch", "compiled", "matched") if o in outcomes)] += 1
    return counts


def table(rows: list[dict], target_names: list[str], before: dict[str, list[dict]] | None = None) -> str:
    lines = [f"# Cut fuzzing: {len(rows)} cuts over {len({r['model'] for r in rows})} models", "",
             "Per target, cuts whose every tier: matched onnxruntime (run here), compiled (not run here), "
             "or the worst tier's outcome.", "",
             "| target | cuts | all tiers matched | compiled, not run | mismatch | refused |",
             "|---|---|---|---|---|---|"]
    for target in target_names:
        counts = worst_outcomes(rows, target)
        lines.append(f"| {target} | {sum(counts.values())} | {counts['matched']} | {counts['compiled']} | "
                     f"{counts['mismatch']} | {counts['refused']} |")
    commits = collections.Counter(str(r.get("commit")) for r in rows)
    lines += ["", "Commits the cuts ran on: " + ", ".join(f"{c} ({n} cuts)" for c, n in commits.most_common()) + "."]
    lines += before_after(rows, before or {})
    lines += ["", "| model | cuts | 2 tiers | 3 tiers |", "|---|---|---|---|"]
    by_model = collections.defaultdict(list)
    for r in rows:
        by_model[r["model"]].append(r)
    for model, cuts in sorted(by_model.items()):
        lines.append(f"| {model} | {len(cuts)} | {sum(len(c['tiers']) == 2 for c in cuts)} | "
                     f"{sum(len(c['tiers']) == 3 for c in cuts)} |")
    failures = [(r, target, t) for r in rows for target in target_names for t in r["targets"].get(target, [])
                if outcome(t) in ("refused", "mismatch")]
    if failures:
        lines += ["", "Failures:", ""]
        for r, target, t in failures:
            why = t.get("error") or t.get("check", {}).get("failed") or t.get("qemu", {}).get("error") or t.get("qemu")
            lines.append(f"- {r['model']} cut {r['index']} ({target}): {why}")
    return "\n".join(lines) + "\n"


def before_after(rows: list[dict], before: dict[str, list[dict]]) -> list[str]:
    """The same cuts (model and index) before the fixes and now: per earlier run and target."""
    if not before:
        return []
    lines = ["", "Before and after the fixes: the same cuts (model, index) from an earlier run, and now.", "",
             "| before | target | cuts | before: matched / compiled / mismatch / refused | "
             "now: matched / compiled / mismatch / refused |", "|---|---|---|---|---|"]
    now = {(r["model"], r["index"]): r for r in rows}
    for label, earlier in before.items():
        same = [r for r in earlier if (r["model"], r["index"]) in now]
        label = f"{label} ({', '.join(sorted({str(r.get('commit')) for r in same}))})"
        for target in sorted({t for r in same for t in r["targets"]}):
            then, after = worst_outcomes(same, target), worst_outcomes([now[(r["model"], r["index"])] for r in same],
                                                                        target)
            lines.append(f"| {label} | {target} | {sum(then.values())} | "
                         + " / ".join(str(then[o]) for o in ("matched", "compiled", "mismatch", "refused")) + " | "
                         + " / ".join(str(after[o]) for o in ("matched", "compiled", "mismatch", "refused")) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("zoo", type=Path, nargs="?", default=os.environ.get("EDGEPART_ZOO"),
                        help="a folder of ONNX models (default: $EDGEPART_ZOO)")
    parser.add_argument("--cuts", type=int, default=200, help="cuts in all, drawn round robin over the models")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--qemu-every", type=int, default=10, help="run every Nth cut's aarch64 tiers under qemu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default="", help="comma-separated stems (default: every .onnx in ZOO)")
    parser.add_argument("--name", default="cuts", help="results file stem")
    parser.add_argument("--without-shape-folding", action="store_true",
                        help="load models without folding their shape arithmetic (edgepart.graph.shape_values): the "
                             "cuts as they were before it, for the before/after table")
    parser.add_argument("--before", action="store_true",
                        help="compare with the same cuts in earlier runs' results, NAME_before*.jsonl (e.g. a "
                             "--without-shape-folding run saved as cuts_before.jsonl)")
    args = parser.parse_args()
    if args.without_shape_folding:
        graph._shape_values = lambda model, types: {}
    if args.zoo is None:
        print("bench_cuts: no models (give a folder of ONNX files or set EDGEPART_ZOO)", file=sys.stderr)
        return
    target_names = [t for t in args.targets.split(",") if t]
    paths = sorted(Path(args.zoo).glob("*.onnx"))
    if args.models:
        paths = [p for p in paths if p.stem in args.models.split(",")]
    log = RESULTS / f"{args.name}.jsonl"
    RESULTS.mkdir(exist_ok=True)
    done = {(r["model"], r["index"]) for r in _rows(log)}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or None
    loaded = {}
    for n in range(args.cuts):
        path = paths[n % len(paths)]
        index = n // len(paths)
        if (path.stem, index) in done:
            continue
        if path not in loaded:
            loaded[path] = graph.load(str(path))
        rng = np.random.default_rng([args.seed, index, sum(path.stem.encode())])
        placement = draw(loaded[path].graph, 2 + int(rng.integers(2)), rng)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            record = check_cut(loaded[path], path, placement, target_names, index % args.qemu_every == 0, Path(tmp))
        record.update(model=path.stem, index=index, seed=args.seed, seconds=time.perf_counter() - started,
                      commit=commit)
        with log.open("a") as stream:
            stream.write(json.dumps(record) + "\n")
        print(f"{path.stem} cut {index}: " + ", ".join(
            f"{t} {'/'.join(outcome(x) for x in record['targets'][t])}" for t in target_names)
            + f" ({record['seconds']:.0f} s)", flush=True)
    rows = _rows(log)
    before = {path.stem: _rows(path) for path in sorted(RESULTS.glob(f"{args.name}_before*.jsonl"))
              if path.stem != args.name} if args.before else {}
    (RESULTS / f"{args.name}.md").write_text(table(rows, target_names, before))
    print(table(rows, target_names, before))


def _rows(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []


if __name__ == "__main__":
    main()
