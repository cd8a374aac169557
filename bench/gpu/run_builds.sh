#!/usr/bin/env bash
# On the GPU machine: verify the three-tier builds with the CUDA tier on the GPU (runtime-only TVM).
set -euo pipefail
source bench/gpu/runtime_env.sh
python3 -c "import click, onnx, onnxruntime; print('onnxruntime', onnxruntime.__version__, 'onnx', onnx.__version__)"
python3 bench/gpu/verify_builds.py .device/builds "${OUT:-/tmp}/gpu_builds.json"
