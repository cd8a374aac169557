"""Build what the GPU profiling run needs, on this (GPU-less) host, into .device/profile/.

Each example model compiled whole by edgepart for cuda-sm90 (device code embedded as a fatbin),
with a seeded input. The runtime-only tvm package and the cp312 apache-tvm-ffi wheel are reused
from .device/ (bench/gpu/prepare.py makes them).

    python -m bench.gpu.prepare_profile && (device) bash bench/gpu/run_profile.sh
    python -m bench.gpu.profile_report RESULT.json     (here: the profile files, with onnxruntime's weights)
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx

from edgepart import graph
from edgepart.graph.sessions import named_model
from edgepart.profile.ort_profiler import sample_inputs
from edgepart.toolchain import compilers, targets

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / ".device" / "profile"
MODELS = ["chain_cnn", "residual_cnn", "inception_cnn", "transformer_encoder", "digits_cnn"]


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    preset = targets.resolve("cuda-sm90")
    cases = []
    for name in MODELS:
        loaded = graph.load(REPO / "models" / f"{name}.onnx")
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "model.onnx"
            onnx.save(named_model(loaded), source)
            artifact = compilers.TvmCompiler().compile(source, preset, Path(tmp), name)
            shutil.copyfile(artifact.path, OUT / f"{name}.so")
        inputs = sample_inputs(loaded)
        np.savez(OUT / f"{name}.inputs.npz", **{f"in{i}": v for i, v in enumerate(inputs.values())})
        cases.append({"model": name, "library": f"{name}.so", "device_code": artifact.details.get("device_code"),
                      "sha256": loaded.sha256})
        print(name, artifact.details.get("device_code"), flush=True)
    (OUT / "cases.json").write_text(json.dumps(cases, indent=1))


if __name__ == "__main__":
    main()
