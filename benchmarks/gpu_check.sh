#!/usr/bin/env bash
# The GPU checks, as run on a lent CUDA machine without Ray (README "GPU notes"): the standalone training loop
# on CUDA in every precision (tokens/s, peak CUDA memory, MFU against a matrix-product peak measured in the
# same run), then every component trained and evaluated on the GPU (bf16) and on that machine's CPU.
#
#   benchmarks/gpu_check.sh [OUT_DIR]      # needs python3 with torch (CUDA), pydantic, regopy, pyarrow, pyyaml
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-reports/benchmarks}
export PYTHONUNBUFFERED=1
# not installed: the package directory is importable as it is
python3 -c "import acgs_workloads" 2>/dev/null || export PYTHONPATH="$PWD/workloads${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
python3 benchmarks/bench_transformer_efficiency.py --gpu --examples 4096 --seq 256 --hidden 768 --layers 8 \
    --heads 12 --batch-size 32 --epochs 3
python3 benchmarks/bench_components.py --gpu --precision bf16 --out components_gpu.json
python3 benchmarks/bench_components.py --precision off --out components_device_cpu.json
mkdir -p "$out" && cp reports/benchmarks/transformer_efficiency_gpu.* reports/benchmarks/components_*.json "$out"/ 2>/dev/null || true
