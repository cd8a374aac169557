"""On a machine with an NVIDIA GPU: `edgepart verify` each three-tier build (the CUDA tier runs on
the GPU with TVM's runtime only), then time the CUDA tier and measure its energy with NVML.

    python3 bench/gpu/verify_builds.py .device/builds RESULT.json      (see bench/gpu/run_builds.sh)
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.gpu.check import energy_counter, idle_power, measure  # noqa: E402
from edgepart.compile import manifest  # noqa: E402
from edgepart.runtime import tier as tier_loader  # noqa: E402
from edgepart.runtime.verify import verify  # noqa: E402


def main() -> None:
    builds, result_path = Path(sys.argv[1]), Path(sys.argv[2])
    read_joules = energy_counter()
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True).stdout.strip()
    results = {"gpu": gpu, "python": platform.python_version(), "idle_power_w": idle_power(read_joules),
               "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "builds": []}
    for build in sorted(p for p in builds.iterdir() if (p / manifest.FILE).is_file()):
        row = {"model": build.name}
        try:
            report = verify(build)
            row["verify"] = report
            doc = manifest.Manifest.load(build).doc
            cloud = next(t for t in doc["tiers"] if t["runtime_device"] == "cuda")
            runner = tier_loader.load(build, cloud["name"])
            rng = np.random.default_rng(0)
            inputs = [rng.standard_normal(spec["shape"]).astype(spec["dtype"]) if spec["dtype"].startswith("float")
                      else np.zeros(spec["shape"], spec["dtype"]) for spec in cloud["inputs"]]
            row["cloud_tier"] = {"layers": cloud["layers"], "device_code": cloud["build"].get("device_code"),
                                 **measure(runner, inputs, read_joules)}
        except Exception as exc:  # record and go on
            row["error"] = f"{type(exc).__name__}: {str(exc)[:400]}"
        results["builds"].append(row)
        ran = {t["name"]: t["ran_with"] for t in row.get("verify", {}).get("tiers", [])}
        worst = max((o["relative_error"] for o in row.get("verify", {}).get("outputs", {}).values()), default=None)
        cloud_tier = row.get("cloud_tier", {})
        print(f"{build.name:20s} passed={row.get('verify', {}).get('passed')} rel_err={worst} "
              f"cloud={ran.get('cloud')} latency={cloud_tier.get('latency_s', {}).get('median')} "
              f"energy={cloud_tier.get('energy', {}).get('joules_per_inference')} {row.get('error', '')}", flush=True)
    result_path.write_text(json.dumps(results, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
