#!/usr/bin/env bash
# The GPU check: on one GPU node, in a few minutes, with no internet and no real weights (the tiny checkpoint is
# built here), the GPU paths the tests cannot reach on CPU machines: bf16 load with and without the talker, every
# task and medium, talker speech, a ~28k-token video prefill with its peak memory, a mixed batch, an out-of-memory
# error followed by a good generate, the aligner on CUDA, and the vLLM engine where vllm is installed (its image).
# Figures go to one JSON file.
#   bash infra/gpu-check.sh [--out gpu-check.json]      # on the GPU node (the CUDA or the vLLM image)
#   bash infra/gpu-check.sh --dry-run                   # the same checks on the CPU, smaller (what CI runs)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY=python3
cd "$ROOT"
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONPATH="$ROOT" exec timeout 900 "$PY" infra/gpu_check.py "$@"
