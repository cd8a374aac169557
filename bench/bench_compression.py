"""Compression benchmark (`python -m bench.bench_compression`), issue #5.

1. Accuracy budgets on the trained digits CNN (examples/compressed.toml: Raspberry Pi 4 + edge server
   over Ethernet): plans under 0.5%, 1% and 2%, compiled with int8 layers, measured on the 540 held-out
   images; predicted against measured drop.
2. Every example model, two tiers over 3G, LTE, WiFi and Ethernet: the best fp32 plan (raw tensors) against the
   best plan with int8 layers and codecs under a 1% budget (sensitivities measured on calibration data
   for digits, on 32 seeded inputs with the cosine metric otherwise); predicted latency of both.
3. Each codec's ratio and encode/decode time (this host) on the tensors those plans cut.

Writes bench/results/compression.json and compression.md, prints the tables.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from edgepart import graph, schema
from edgepart.compile.build import compile_plan
from edgepart.compress import codecs, data, sensitivity
from edgepart.compress.sensitivity import Sensitivity
from edgepart.hardware import deploy
from edgepart.hardware.devices import load_device
from edgepart.machine import host_description
from edgepart.plan import planner
from edgepart.plan.plan_file import Plan
from edgepart.runtime import emulate, verify

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
MODELS = ROOT / "models"
LINKS = ("3g", "lte", "wifi", "ethernet")
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


def sensitivities() -> dict[str, tuple[graph.LoadedModel, dict]]:
    result = {}
    for path in sorted(MODELS.glob("*.onnx")):
        loaded = graph.load(path)
        dataset = (data.load(str(MODELS / "digits_calib.npz"), loaded) if path.stem == "digits_cnn"
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


def budgets_on_digits(loaded, sens: dict, tmp: Path) -> list[dict]:
    rows = []
    base = (ROOT / "examples" / "compressed.toml").read_text()
    test = data.load(str(MODELS / "digits_test.npz"), loaded)
    calibration = data.load(str(MODELS / "digits_calib.npz"), loaded)
    for budget in ("0.5%", "1%", "2%"):
        path = tmp / f"compressed-{budget}.toml"
        path.write_text(base.replace('accuracy_drop = "1%"', f'accuracy_drop = "{budget}"'))
        request = planner.PlanRequest(solver="ilp", sensitivity=Sensitivity.of(sens), reproducible=True)
        doc = planner.plan(loaded, deploy.load(str(path)), request)
        plan_path = tmp / f"plan-{budget}.json"
        schema.write_json(plan_path, doc)
        build = tmp / f"build-{budget}"
        compile_plan(loaded, Plan.load(plan_path), build, calibration=calibration)
        report = verify.validate_accuracy(build, str(MODELS / "digits_test.npz"), emulators=emulate.available()).doc
        precisions = list(doc["precision"].values())
        rows.append({"budget": float(budget.rstrip("%")) / 100, "predicted_drop": doc["predicted"]["accuracy_drop"],
                     "measured_drop": report["measured_drop"], "fp32_accuracy": report["fp32"],
                     "accuracy": report["compressed"], "samples": len(test), "passed": report["passed"],
                     "int8_layers": precisions.count("int8"),
                     "codecs": sorted({u["codec"] for c in doc["cuts"] for u in c["up"]}),
                     "latency_s": doc["predicted"]["latency_s"], "ran_with": report["tiers"]})
    return rows


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


def markdown(budget_rows, compare_rows, codec_rows) -> str:
    lines = ["# Compression (bench/bench_compression.py)", "",
             "## Accuracy budgets, digits CNN, 540 held-out images", "",
             "| budget | int8 layers | codecs | predicted drop | measured drop | accuracy (fp32) | within |",
             "|---|---|---|---|---|---|---|"]
    for r in budget_rows:
        lines.append(f"| {r['budget']:.1%} | {r['int8_layers']} | {', '.join(r['codecs']) or '-'} | "
                     f"{r['predicted_drop']:.2%} | {r['measured_drop']:.2%} | {r['accuracy']:.4f} "
                     f"({r['fp32_accuracy']:.4f}) | {'yes' if r['passed'] else 'NO'} |")
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
    sens = sensitivities()
    with tempfile.TemporaryDirectory() as tmp:
        budget_rows = budgets_on_digits(*sens["digits_cnn"], Path(tmp))
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
    print(f"compressed never slower: {never_slower}; strictly faster on some link for {len(faster)} of "
          f"{len(sens)} models; budgets held: {all(r['passed'] for r in budget_rows)}")


if __name__ == "__main__":
    main()
