#!/usr/bin/env bash
# By hand, not in CI (it downloads vLLM and its own torch, several GB): build the vLLM worker image's environment
# beside the repo (Python 3.12 as in vllm/vllm-openai, vllm==0.33.0 with its pins, infra/requirements-vllm.txt,
# omnimedia without dependencies), print the versions it resolved, then import the vLLM backend and render the
# prompt, multi_modal_data and processor arguments of every task on the tiny checkpoint's processor (no GPU needed).
#   bash infra/vllm-env-check.sh            # VLLM_ENV=/path to reuse an environment
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VLLM_ENV:-${TMPDIR:-/tmp}/omnimedia-vllm-env}"
PY="${PYTHON312:-python3.12}"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "vllm==0.33.0" --requirement infra/requirements-vllm.txt
"$VENV/bin/python" -m pip install -q --no-deps "$ROOT"
echo "== resolved"
"$VENV/bin/python" -m pip list 2>/dev/null | grep -i -E "^(vllm|torch|torchvision|transformers|tokenizers|numpy|av) "
echo "== rendering every task (cwd: a scratch folder, so the installed omnimedia is what runs)"
cd "$(mktemp -d)" && "$VENV/bin/python" "$ROOT/infra/vllm_env_check.py"
