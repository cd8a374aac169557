"""Build what the GPU check needs, on this (GPU-less) host, into .device/ (git-ignored).

For each model: a CUDA sm_90 library built with edgepart's fatbin recipe (compiled device code
embedded), a library built the stock way (CUDA source, compiled when loaded) for comparison,
a seeded input and the onnxruntime (CPU) reference output. Plus a runtime-only copy of the tvm
package (tar.gz) and the cp312 apache-tvm-ffi wheel, since the GPU machine runs Python 3.12.

    python -m bench.gpu.prepare && (device) bash bench/gpu/run.sh
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from edgepart.toolchain import cuda_env

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / ".device"
MODELS = ["chain_cnn", "residual_cnn", "inception_cnn", "transformer_encoder", "digits_cnn"]
# Only the ones with the most kernel types also get the stock (source) build, to stay under 64 MiB.
SOURCE_VARIANT = {"transformer_encoder", "mobilenet_v2", "inception_cnn", "chain_cnn"}


def model_paths(work: Path) -> dict[str, Path]:
    sys.path.insert(0, str(REPO))
    from tests import zoo

    paths = {name: REPO / "models" / f"{name}.onnx" for name in MODELS}
    paths["mobilenet_v2"] = work / "mobilenet_v2.onnx"
    onnx.save(zoo.mobilenet_v2(weights="random", classes=10), paths["mobilenet_v2"])
    return paths


def build(onnx_path: Path, out: Path, embed_device_code: bool) -> dict:
    model = onnx.load(onnx_path, load_external_data=False)
    spec = {
        "onnx": str(onnx_path), "out": str(out), "device": "cuda", "cc": "g++",
        "target": {"kind": "cuda", "arch": "sm_90"}, "host": {"kind": "llvm", "mcpu": "x86-64"},
        "input_shapes": {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input},
        "input_dtypes": {i.name: onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type).name
                         for i in model.graph.input},
    }
    spec_path = out.with_suffix(".spec.json")
    spec_path.write_text(json.dumps(spec))
    env = cuda_env.build_env() if embed_device_code else None
    result = subprocess.run([sys.executable, "-m", "edgepart.toolchain.tvm_worker", str(spec_path)],
                            capture_output=True, text=True, env=env)
    spec_path.unlink()
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    summary = json.loads(result.stdout)
    data = out.read_bytes()
    summary["fatbin_embedded"] = cuda_env.FATBIN_MAGIC in data
    summary["cuda_source_kernels"] = data.count(b"__global__")
    return summary


def reference(onnx_path: Path) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    inputs = {}
    for i in session.get_inputs():
        shape = tuple(i.shape)
        inputs[i.name] = (rng.integers(0, 1000, shape) if "int64" in i.type
                          else rng.standard_normal(shape).astype(np.float32))
    return inputs, session.run(None, inputs)


def runtime_only_tvm(dest: Path) -> None:
    import tvm

    package = Path(tvm.__file__).parent
    skip = {"libtvm_compiler.so", "libtvm_runtime_extra.so", "3rdparty", "include", "src", "web", "__pycache__"}

    def keep(tarinfo: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return None if Path(tarinfo.name).name in skip else tarinfo

    with tarfile.open(dest / "tvm_runtime.tar.gz", "w:gz") as tar:
        tar.add(package, arcname="tvm", filter=keep)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp", "--platform", "manylinux_2_28_x86_64",
                    "-d", str(dest), "apache-tvm-ffi==0.1.14.post1"], check=True)


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    (OUT / "cases").mkdir(parents=True)
    cases = []
    for name, path in model_paths(OUT).items():
        inputs, outputs = reference(path)
        np.savez(OUT / "cases" / f"{name}.io.npz", **{f"in{i}": v for i, v in enumerate(inputs.values())},
                 **{f"out{i}": v for i, v in enumerate(outputs)})
        variants = {"fatbin": True, **({"source": False} if name in SOURCE_VARIANT else {})}
        for variant, embed in variants.items():
            artifact = OUT / "cases" / f"{name}.{variant}.so"
            summary = build(path, artifact, embed)
            cases.append({"model": name, "variant": variant, "artifact": artifact.name, "build": summary})
            print(f"{name:20s} {variant:7s} {summary['bytes'] / 2**20:6.2f} MiB fatbin={summary['fatbin_embedded']}"
                  f" cuda_source_kernels={summary['cuda_source_kernels']}")
    (OUT / "mobilenet_v2.onnx").unlink()
    (OUT / "cases" / "cases.json").write_text(json.dumps(cases, indent=1))
    runtime_only_tvm(OUT)
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f".device/: {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
