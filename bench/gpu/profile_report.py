"""Turn the GPU profiling run (bench/gpu/profile_cuda.py) into edgepart profile files of the CUDA
artifacts, with NVML energy, and a table (`python -m bench.gpu.profile_report RAW.json GPU`).

The per-layer split uses TVM's unfused kernel times measured on this host's CPU, exactly as
`edgepart profile --backend tvm` does for a target it cannot run here.
Writes bench/results/gpu_profile_<gpu>/<model>.json and bench/results/gpu_profile_<gpu>.md.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import onnx

from edgepart import graph, schema
from edgepart.graph.sessions import named_model
from edgepart.hardware.devices import load_device
from edgepart.profile import document
from edgepart.profile.energy import EnergyReading
from edgepart.profile.ort_profiler import RunOptions, Stats
from edgepart.profile.tvm_profiler import TvmMeasurement, kernel_times, per_layer
from edgepart.toolchain import targets

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    raw = json.loads(Path(sys.argv[1]).read_text())
    gpu = sys.argv[2]
    device = load_device(gpu)
    folder = REPO / "bench" / "results" / f"gpu_profile_{gpu}"
    folder.mkdir(exist_ok=True)
    options = RunOptions(threads=1, warmup=10, repeat=50)
    rows = []
    for case in raw["cases"]:
        loaded = graph.load(REPO / "models" / f"{case['model']}.onnx")
        if loaded.sha256 != case["sha256"]:
            raise SystemExit(f"{case['model']}: the model changed since the GPU run")
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "model.onnx"
            onnx.save(named_model(loaded), source)
            kernels, _ = kernel_times(loaded, source, targets.resolve("cuda-sm90"), options)
        e2e = Stats.of(case["seconds"])
        layers, scale = per_layer(loaded, kernels, e2e)
        weights = {name: stats.median for name, stats in layers.items()}
        e = case["energy"]
        reading = EnergyReading(e["joules_per_run"], e["method"], e["window_s"], e["runs"])
        measurement = TvmMeasurement(e2e, layers, weights, reading, "cuda-sm90", f"{raw['gpu']} (device run)", 0.0,
                                     scale)
        doc = document.tvm_document(loaded, device, options, measurement)
        doc["provenance"]["energy"]["idle_w"] = e["idle_w"]
        doc["provenance"]["energy"]["dynamic_joules_per_run"] = e["dynamic_joules_per_run"]
        schema.write_json(folder / f"{case['model']}.json", doc)
        rows.append(f"| {case['model']} | {case['device_code']} | {e2e.median * 1e6:.1f} us | {e2e.p10 * 1e6:.1f} / "
                    f"{e2e.p90 * 1e6:.1f} us | {e['joules_per_run'] * 1e3:.2f} mJ | "
                    f"{e['dynamic_joules_per_run'] * 1e3:.2f} mJ | {e['window_s']:.2f} s, {e['runs']} runs | "
                    f"{case['load_s']:.2f} s |")
    lines = [f"# CUDA artifacts profiled on the GPU ({raw['gpu']}, Python {raw['python']})", "",
             "Each example model compiled whole by edgepart for cuda-sm90 (fatbin embedded) on the build host, loaded "
             "with TVM's runtime only on the GPU machine, timed by TVM's time_evaluator (50 repeats, each the mean of "
             "back-to-back runs), energy from NVML's total-energy counter over a window of at least 1 s. Dynamic = "
             "board energy less the idle power measured just before over the same time. Profile files: "
             f"bench/results/gpu_profile_{gpu}/.", "",
             "| model | device code | median | p10 / p90 | energy / inference | dynamic | energy window | first load |",
             "|---|---|---|---|---|---|---|---|", *rows, ""]
    (REPO / "bench" / "results" / f"gpu_profile_{gpu}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
