#!/usr/bin/env bash
# On the GPU machine: load each prepared CUDA library runtime-only and compare with onnxruntime.
set -euo pipefail
source bench/gpu/runtime_env.sh
nvidia-smi --query-gpu=name,driver_version,power.draw --format=csv
python3 bench/gpu/check.py .device/cases "${OUT:-/tmp}/gpu_check.json"
