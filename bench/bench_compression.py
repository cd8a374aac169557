"""Compression benchmark (`python -m bench.bench_compression [--minilm DIR]`), issues #5 and #19.

1. Accuracy budgets on real-weight models, each the whole flow a user runs: `sensitivity` on the
   model's calibration data (timed; probes and estimates where running every choice does not fit the
   default time), `plan` under each budget, then `sensitivity --confirm` (the plan's choices run
   alone, where they were estimated, and together) and `plan` again until the choices together stay
   within the budget (upper 95% bound on the calibration data; at most MAX_ROUNDS), `compile` (int8
   layers calibrated on the same data) and `verify --validate-accuracy` on held-out data: the
   measured drop of the plan against its budget, each round's sum against the run together, and each
   confirmed choice's estimate against its whole-model run.
   - the digits CNN (top-1, 540 held-out images; examples/compressed.toml: Raspberry Pi 4 + edge
     server over Ethernet) under 0.5%, 1% and 2%;
   - the digits encoder (models/digits_encoder.py: a transformer trained in numpy, cosine, 540
     held-out images; the same deployment over 3G, so the board runs it) under 0.1% and 1%;
   - with --minilm DIR (made by bench/export/minilm.py: the real all-MiniLM-L6-v2, 64 calibration
     sentences, choices measured on the first 16 and plans checked on all 64, and 256 held out):
     a phone (Snapdragon 8 Gen 2: fp16 and int8) and the edge server over
     WiFi, under 0.1% and 1%.
2. Every example model, two tiers over 3G, LTE, WiFi and Ethernet: the best fp32 plan (raw tensors) against the
   best plan with int8 layers and codecs under a 1% budget (sensitivities measured on the model's calibration
   data where it ships some, else on 32 seeded inputs with the cosine metric); predicted latency of both.
3. Each codec's ratio and encode/decode time (this host) on the tensors those plans cut.

Writes bench/results/compression.json and compression.md, prints the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from edgepart import api, graph
from edgepart.compress import codecs, data, sensitivity
from edgepart.compress.sensitivity import Sensitivity
from edgepart.errors import CheckFailedError
from edgepart.hardware import deploy
from edgepart.hardware.devices import load_device
from edgepart.machine import host_description
from edgepart.plan import planner

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
MODELS = ROOT / "models"
EXAMPLES = ROOT / "examples"
LINKS = ("3g", "lte", "wifi", "ethernet")
CALIBRATION = {"digits_cnn": "digits_calib.npz", "digits_encoder": "digits_encoder_calib.npz"}
MAX_ROUNDS = 4  # of confirm and plan again
TWO_TIERS = """
[deploy]
output_tier = "device"
codecs = {codecs}
[[tier]]
name = "device"
device = "rpi4"
target = "aarch64"
precisions = {precisions}
[[tier]]
name = "edge"
device = "xeon-edge-server"
target = "x86-64"
precisions = {precisions}
[[link]]
from = "device"
to = "edge"
preset = "{link}"
[budgets]
accuracy_drop = "{budget}"
"""


@dataclass(frozen=True)
class BudgetCase:
    """A real-weight model, a deployment (examples/compressed.toml with another link and precisions),
    its calibration and held-out data, and the budgets to plan it under."""

    name: str
    model: Path
    calibration: Path
    held_out: Path
    budgets: tuple[str, ...]
    link: str = "ethernet"
    device: str = "rpi4"
    device_precisions: tuple[str, ...] = ("fp32", "int8")  # the edge server's stay fp32 and int8
    samples: int | None = None  # measure choices on the first N calibration samples (plans are checked on all)

    def deployment(self, folder: Path, budget: str) -> Path:
        text = (EXAMPLES / "compressed.toml").read_text()
        text = text.replace('preset = "ethernet"', f'preset = "{self.link}"')
        text = text.replace('device = "rpi4"', f'device = "{self.device}"')
        text = text.replace('precisions = ["fp32", "int8"]', f"precisions = {json.dumps(list(self.device_precisions))}",
                            1)
        path = folder / f"{self.name}-{budget.replace('%', 'pct')}.toml"
        path.write_text(text.replace('accuracy_drop = "1%"', f'accuracy_drop = "{budget}"'))
        return path


def budget_cases(minilm: Path | None) -> list[BudgetCase]:
    cases = [BudgetCase("digits_cnn", MODELS / "digits_cnn.onnx", MODELS / "digits_calib.npz",
                        MODELS / "digits_test.npz", ("0.5%", "1%", "2%")),
             BudgetCase("digits_encoder", MODELS / "digits_encoder.onnx", MODELS / "digits_encoder_calib.npz",
                        MODELS / "digits_encoder_test.npz", ("0.1%", "1%"), link="3g")]
    if minilm is not None:
        cases.append(BudgetCase("all-MiniLM-L6-v2", minilm / "minilm.onnx", minilm / "minilm_calib.npz",
                                minilm / "minilm_test.npz", ("0.1%", "1%"), link="wifi",
                                device="snapdragon-8-gen2", device_precisions=("fp32", "fp16", "int8"), samples=16))
    return cases


def budgets(case: BudgetCase, tmp: Path) -> dict:
    """The flow of a user who plans under each budget (see the module's docstring), on a cache of its own."""
    os.environ["EDGEPART_CACHE"] = str(tmp / f"cache-{case.name}")
    started = time.perf_counter()
    measured = api.sensitivity(case.model, data=case.calibration, samples=case.samples)
    measured_s = time.perf_counter() - started
    rows = []
    for budget in case.budgets:
        deployment, limit = case.deployment(tmp, budget), float(budget.rstrip("%")) / 100
        plan, sens, rounds, confirmed = api.plan(case.model, deployment, sensitivity=measured, reproducible=True), \
            measured, [], []
        for _ in range(MAX_ROUNDS):  # confirm the plan's choices, alone and together; plan again while over
            if not plan.lossy_choices():
                break
            sens = api.sensitivity(case.model, data=case.calibration, samples=case.samples, confirm=plan)
            confirmed += [c for c in sens.doc.get("confirmed", []) if c["estimate"] is not None]
            together = sens.doc["composed"][-1]
            rounds.append({"predicted_drop": plan.doc["predicted"]["accuracy_drop"], **together})
            if together["bound"] <= limit:
                break
            plan = api.plan(case.model, deployment, sensitivity=sens, reproducible=True)
        build = tmp / f"build-{case.name}-{budget}"
        api.compile(case.model, plan, build, calibration=case.calibration)
        try:
            report = api.verify(build, validate_accuracy=case.held_out).doc
        except CheckFailedError as failed:
            report = failed.details
        rows.append({"budget": limit, "choices": sorted(map(list, plan.lossy_choices())),
                     "int8_layers": list(plan.precisions.values()).count("int8"),
                     "fp16_layers": list(plan.precisions.values()).count("fp16"),
                     "codecs": sorted({up.codec for link in plan.links for up in link.up}),
                     "predicted_drop": plan.doc["predicted"]["accuracy_drop"], "rounds": rounds,
                     "measured_drop": report["measured_drop"], "metric": report["metric"],
                     "fp32_score": report["fp32"], "score": report["compressed"],
                     "samples": report["data"]["samples"], "passed": report["passed"],
                     "latency_s": plan.doc["predicted"]["latency_s"], "confirmed": confirmed,
                     "ran_with": report["tiers"]})
    return {"model": case.name, "sensitivity_s": measured_s, "coverage": measured.doc["coverage"], "budgets": rows,
            "held_out": str(case.held_out.name), "calibration": str(case.calibration.name)}


def sensitivities() -> dict[str, tuple[graph.LoadedModel, dict]]:
    result = {}
    for path in sorted(MODELS.glob("*.onnx")):
        loaded = graph.load(path)
        dataset = (data.load(str(MODELS / CALIBRATION[path.stem]), loaded) if path.stem in CALIBRATION
                   else data.seeded(loaded, 32))
        bandwidth = load_device("local").memory_bandwidth
        result[path.stem] = (loaded, sensitivity.measure(loaded, dataset, memory_bandwidth_bps=bandwidth))
        print(f"sensitivity {path.stem}: {result[path.stem][1]['seconds']:.1f} s", flush=True)
    return result


def deployment(tmp: Path, link: str, compressed: bool, budget: str = "1%") -> deploy.Deployment:
    text = TWO_TIERS.format(codecs=json.dumps(list(codecs.CODECS) if compressed else ["raw"]),
                            precisions=json.dumps(["fp32", "int8"] if compressed else ["fp32"]),
                            link=link, budget=budget)
    path = tmp / f"{link}-{compressed}-{budget.replace('%', 'pct')}.toml"
    path.write_text(text)
    return deploy.load(str(path))


def fp32_against_compressed(sens: dict, tmp: Path) -> tuple[list[dict], dict[str, set[str]]]:
    rows, cut = [], {}
    for name, (loaded, doc) in sens.items():
        cut[name] = set()
        for link in LINKS:
            plans = {}
            for compressed in (False, True):
                request = planner.PlanRequest(solver="ilp", sensitivity=Sensitivity.of(doc) if compressed else None,
                                              reproducible=True)
                plans[compressed] = planner.plan(loaded, deployment(tmp, link, compressed), request)
                cut[name] |= {u["tensor"] for c in plans[compressed]["cuts"] for u in c["up"]}
            fp32, best = plans[False]["predicted"], plans[True]["predicted"]
            rows.append({"model": name, "link": link, "fp32_latency_s": fp32["latency_s"],
                         "compressed_latency_s": best["latency_s"], "speedup": fp32["latency_s"] / best["latency_s"],
                         "predicted_drop": best["accuracy_drop"],
                         "int8_layers": list(plans[True]["precision"].values()).count("int8"),
                         "codecs": sorted({u["codec"] for c in plans[True]["cuts"] for u in c["up"]})})
    return rows, cut


def codec_table(sens: dict, cut: dict[str, set[str]]) -> list[dict]:
    rows = []
    for name, (_, doc) in sens.items():
        tensors = cut[name] & set(doc["tensors"]) or {max(doc["tensors"], key=lambda t: doc["tensors"][t]["bytes"])}
        for tensor in sorted(tensors):
            entry = doc["tensors"][tensor]
            for codec, measured in entry["codecs"].items():
                rows.append({"model": name, "tensor": tensor, "codec": codec, "raw_bytes": entry["bytes"],
                             "bytes": measured["bytes"], "ratio": entry["bytes"] / measured["bytes"],
                             "encode_s": measured["encode_s"], "decode_s": measured["decode_s"],
                             "drop": measured.get("drop", 0.0)})
    return rows


def markdown(budget_cases, compare_rows, codec_rows) -> str:
    lines = ["# Compression (bench/bench_compression.py)", "",
             "## Accuracy budgets on real-weight models (sensitivity -> plan -> confirm -> plan -> compile -> "
             "verify --validate-accuracy on held-out data)", "",
             "| model | sensitivity | budget | int8 / fp16 layers | codecs | per round: alone -> together (95% "
             "bound), calibration | predicted | measured, held out | score (fp32) | within | estimate / run |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for case in budget_cases:
        for r in case["budgets"]:
            ratios = sorted(c["estimate"] / c["run"] for c in r["confirmed"] if (c["run"] or 0) > 1e-7)
            confirmed = (f"{len(ratios)} estimates, median {ratios[len(ratios) // 2]:.2f}x" if ratios else "-")
            together = "; ".join(f"{x['alone']:.3%} -> {x['together']:.3%} (<= {x['bound']:.3%})" for x in r["rounds"])
            lines.append(f"| {case['model']} | {case['sensitivity_s']:.0f} s | {r['budget']:.1%} | "
                         f"{r['int8_layers']} / {r['fp16_layers']} | {', '.join(r['codecs']) or '-'} | "
                         f"{together or '-'} | {r['predicted_drop']:.3%} | {r['measured_drop']:.3%} | "
                         f"{r['metric']} {r['score']:.4f} "
                         f"({r['fp32_score']:.4f}), {r['samples']} samples | {'yes' if r['passed'] else 'NO'} | "
                         f"{confirmed} |")
    lines += ["", "## fp32 plan against the plan with int8 and codecs (predicted latency, 1% budget)", "",
              "| model | link | fp32 plan | compressed plan | speed-up | int8 layers | codecs |",
              "|---|---|---|---|---|---|---|"]
    for r in compare_rows:
        lines.append(f"| {r['model']} | {r['link']} | {r['fp32_latency_s'] * 1e3:.3f} ms | "
                     f"{r['compressed_latency_s'] * 1e3:.3f} ms | {r['speedup']:.2f}x | {r['int8_layers']} | "
                     f"{', '.join(r['codecs']) or '-'} |")
    lines += ["", "## Codecs on cut tensors (this host, median of 8 samples)", "",
              "| model | tensor | codec | raw | ratio | encode | decode |", "|---|---|---|---|---|---|---|"]
    for r in codec_rows:
        lines.append(f"| {r['model']} | {r['tensor']} | {r['codec']} | {r['raw_bytes']} B | {r['ratio']:.2f}x | "
                     f"{r['encode_s'] * 1e6:.0f} us | {r['decode_s'] * 1e6:.0f} us |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minilm", type=Path, help="a folder made by bench/export/minilm.py")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        budget_rows = [budgets(case, Path(tmp)) for case in budget_cases(args.minilm)]
        sens = sensitivities()
        compare_rows, cut = fp32_against_compressed(sens, Path(tmp))
    codec_rows = codec_table(sens, cut)
    result = {"host": host_description(), "budgets": budget_rows, "fp32_vs_compressed": compare_rows,
              "codecs": codec_rows}
    (RESULTS / "compression.json").write_text(json.dumps(result, indent=1) + "\n")
    table = markdown(budget_rows, compare_rows, codec_rows)
    (RESULTS / "compression.md").write_text(table)
    print(table)
    never_slower = all(r["compressed_latency_s"] <= r["fp32_latency_s"] * (1 + 1e-9) for r in compare_rows)
    faster = {r["model"] for r in compare_rows if r["compressed_latency_s"] < r["fp32_latency_s"] * 0.999}
    held = all(r["passed"] for case in budget_rows for r in case["budgets"])
    differ = {case["model"]: len({tuple(c) for c in case["budgets"][0]["choices"]}
                                 ^ {tuple(c) for c in case["budgets"][-1]["choices"]}) for case in budget_rows}
    print(f"compressed never slower: {never_slower}; strictly faster on some link for {len(faster)} of "
          f"{len(sens)} models; budgets held: {held}; choices that differ between the tightest and loosest "
          f"budget: {differ}")


if __name__ == "__main__":
    main()
