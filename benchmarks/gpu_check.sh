#!/usr/bin/env bash
# The device check of the training engine: a few steps of each deep method with device: cuda, float32 and
# bf16-mixed, throughput and peak memory → benchmarks/results/gpu_check.json. Unattended, under 5 minutes.
# On a fresh GPU machine: installs the locked dependencies (the CUDA build of torch 2.13 comes from the
# machine's index; the CPU wheel pin is replaced), then runs benchmarks/gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch, lightning, xmodal" 2>/dev/null; then
    "$PY" -m pip install -q "pip>=25"
    "$PY" -m pip install -q torch==2.13.0
    grep -v '^torch==' requirements/lock.txt > /tmp/xmodal-lock-gpu.txt
    "$PY" -m pip install -q -c /tmp/xmodal-lock-gpu.txt -e .
fi
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
timeout 280 "$PY" benchmarks/gpu_check.py --out "$OUT/gpu_check.json" "$@"
