#!/usr/bin/env bash
# On the GPU machine: profile each prepared CUDA library (time_evaluator + NVML energy).
set -euo pipefail
source bench/gpu/runtime_env.sh
nvidia-smi --query-gpu=name,driver_version,power.draw --format=csv
python3 bench/gpu/profile_cuda.py .device/profile "${OUT:-/tmp}/gpu_profile.json"
