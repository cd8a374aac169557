"""On a machine with an NVIDIA GPU: load each prepared CUDA library with TVM's runtime only,
compare its output with the onnxruntime reference, and time it and measure its energy with NVML.

    python3 bench/gpu/check.py .device/cases RESULT.json      (see bench/gpu/run.sh)

Energy is measured: differences of NVML's total-energy counter over loops of >= 2 s
(the power reading is a 1 s moving average, so short windows are meaningless).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from edgepart.toolchain.tvm_tier import TvmTier  # noqa: E402  (runtime only: no TVM compiler here)

ENERGY_WINDOW_S = 2.0


def register_load_time_nvcc(arch: str = "sm_90") -> None:
    """What a stock TVM CUDA library needs on the device: compile its CUDA source when loaded."""
    import tvm  # noqa: F401  - tvm registers its own callback on import; ours must come after
    import tvm_ffi

    def compile_source(code, *_):
        with tempfile.TemporaryDirectory() as tmp:
            src, out = Path(tmp, "k.cu"), Path(tmp, "k.fatbin")
            src.write_text(code)
            subprocess.run(["nvcc", "--fatbin", "-O3", "-gencode", f"arch=compute_{arch[3:]},code={arch}",
                            "-o", str(out), str(src)], check=True, capture_output=True)
            return bytearray(out.read_bytes())

    tvm_ffi.register_global_func("tvm_callback_cuda_compile", compile_source, override=True)


def energy_counter():
    import pynvml

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    return lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000.0  # mJ -> J


def measure(tier: TvmTier, inputs: list[np.ndarray], read_joules) -> dict:
    tvm = tier._tvm
    tensors = [tvm.runtime.tensor(x, tier.device) for x in inputs]
    for _ in range(10):
        tier.vm["main"](*tensors)
    tier.sync()
    timer = tier.vm.time_evaluator("main", tier.device, number=50, repeat=7)
    seconds = sorted(timer(*tensors).results)
    runs, start_j, start = 0, read_joules(), time.perf_counter()
    while time.perf_counter() - start < ENERGY_WINDOW_S:
        for _ in range(20):
            tier.vm["main"](*tensors)
        tier.sync()
        runs += 20
    elapsed, joules = time.perf_counter() - start, read_joules() - start_j
    return {
        "latency_s": {"median": seconds[len(seconds) // 2], "min": seconds[0], "max": seconds[-1],
                      "repeats": len(seconds), "number": 50, "clock": "TVM time_evaluator (device sync)"},
        "energy": {"method": "measured: NVML total energy counter", "window_s": elapsed, "runs": runs,
                   "joules_per_inference": joules / runs, "average_power_w": joules / elapsed},
    }


def idle_power(read_joules) -> float:
    start_j, start = read_joules(), time.perf_counter()
    time.sleep(ENERGY_WINDOW_S)
    return (read_joules() - start_j) / (time.perf_counter() - start)


def main() -> None:
    cases_dir, result_path = Path(sys.argv[1]), Path(sys.argv[2])
    cases = json.loads((cases_dir / "cases.json").read_text())
    read_joules = energy_counter()
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True).stdout.strip()
    results = {"gpu": gpu, "host": platform.node(), "python": platform.python_version(),
               "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "tvm_runtime_only": os.environ.get("TVM_USE_RUNTIME_LIB") == "1",
               "idle_power_w": idle_power(read_joules), "cases": []}
    register_load_time_nvcc()
    for case in cases:
        io = np.load(cases_dir / f"{case['model']}.io.npz")
        inputs = [io[k] for k in sorted(k for k in io.files if k.startswith("in"))]
        refs = [io[k] for k in sorted(k for k in io.files if k.startswith("out"))]
        row = {"model": case["model"], "variant": case["variant"], "build": case["build"]}
        try:
            started = time.perf_counter()
            tier = TvmTier(cases_dir / case["artifact"], "cuda")
            row["load_s"] = time.perf_counter() - started
            outputs = tier.run(inputs)
            errors = [float(np.max(np.abs(o.astype(np.float64) - r))) for o, r in zip(outputs, refs)]
            scale = max(float(np.max(np.abs(r))) for r in refs)
            row.update(max_abs_error=max(errors), reference_max_abs=scale,
                       relative_error=max(errors) / scale if scale else max(errors),
                       matches=all(np.allclose(o, r, rtol=1e-3, atol=1e-4 * scale) for o, r in zip(outputs, refs)))
            row.update(measure(tier, inputs, read_joules))
        except Exception as exc:  # record and go on: one broken case must not hide the others
            row["error"] = f"{type(exc).__name__}: {str(exc)[:500]}"
        results["cases"].append(row)
        lat = row.get("latency_s", {}).get("median")
        print(f"{row['model']:20s} {row['variant']:7s} match={row.get('matches')} "
              f"rel_err={row.get('relative_error', float('nan')):.2e} "
              f"latency={'%.3f ms' % (lat * 1e3) if lat else '-'} "
              f"energy={row.get('energy', {}).get('joules_per_inference', float('nan')) * 1e3:.3f} mJ "
              f"{row.get('error', '')}", flush=True)
    result_path.write_text(json.dumps(results, indent=1, sort_keys=True))
    print(f"idle power {results['idle_power_w']:.1f} W; {gpu}")


if __name__ == "__main__":
    main()
