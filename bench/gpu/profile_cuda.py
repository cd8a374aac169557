"""On a machine with an NVIDIA GPU: time each prepared CUDA library on the GPU with TVM's
time_evaluator (runtime only) and measure its energy per inference with NVML's total-energy
counter over a window of at least a second, using edgepart's own runtime and energy modules.

    python3 bench/gpu/profile_cuda.py .device/profile RESULT.json      (see bench/gpu/run_profile.sh)
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from edgepart.profile import energy  # noqa: E402
from edgepart.toolchain.tvm_tier import TvmTier  # noqa: E402  (runtime only: no TVM compiler here)

WARMUP, REPEAT = 20, 50


def idle_power(meter: energy.NvmlMeter, seconds: float = 1.0) -> float:
    start, t0 = meter.read_j(), time.perf_counter()
    time.sleep(seconds)
    return (meter.read_j() - start) / (time.perf_counter() - t0)


def main() -> None:
    folder, out = Path(sys.argv[1]), Path(sys.argv[2])
    meter = energy.NvmlMeter()
    results = {"gpu": meter.description, "python": platform.python_version(), "cases": []}
    for case in json.loads((folder / "cases.json").read_text()):
        started = time.perf_counter()
        tier = TvmTier(folder / case["library"], "cuda")
        load_s = time.perf_counter() - started
        with np.load(folder / f"{case['model']}.inputs.npz") as archive:
            inputs = [archive[f"in{i}"] for i in range(len(archive.files))]
        tier.time(inputs, number=1, repeat=WARMUP)
        once = statistics.median(tier.time(inputs, number=1, repeat=5))
        number = max(1, min(1000, int(0.01 / max(once, 1e-7))))
        seconds = tier.time(inputs, number=number, repeat=REPEAT)
        idle_w = idle_power(meter)
        reading = energy.measure(tier.run_stateful, meter, tier.sync)
        results["cases"].append({
            "model": case["model"], "sha256": case["sha256"], "device_code": case["device_code"], "load_s": load_s,
            "number": number, "seconds": seconds, "median_s": statistics.median(seconds),
            "energy": {"joules_per_run": reading.joules_per_run, "window_s": reading.window_s, "runs": reading.runs,
                       "method": reading.method, "idle_w": idle_w,
                       "dynamic_joules_per_run": reading.joules_per_run - idle_w * reading.window_s / reading.runs},
        })
        print(f"{case['model']:22s} {statistics.median(seconds) * 1e6:9.1f} us  "
              f"{reading.joules_per_run * 1e3:8.3f} mJ/inference (idle {idle_w:.0f} W)", flush=True)
    out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
