#!/usr/bin/env bash
# On the GPU machine: verify the three-tier builds with the CUDA tier on the GPU (runtime-only TVM).
set -euo pipefail
site=/tmp/edgepart-site
rm -rf "$site" && mkdir -p "$site"
tar xzf .device/tvm_runtime.tar.gz -C "$site"
python3 -m pip install -q --no-index --no-deps --no-compile --target "$site" .device/apache_tvm_ffi-*.whl
export PYTHONPATH="$site:$PWD" TVM_USE_RUNTIME_LIB=1 PYTHONUNBUFFERED=1
export LD_LIBRARY_PATH="/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
python3 -c "import click, onnx, onnxruntime; print('onnxruntime', onnxruntime.__version__, 'onnx', onnx.__version__)"
python3 bench/gpu/verify_builds.py .device/builds "${OUT:-/tmp}/gpu_builds.json"
