#!/usr/bin/env bash
# Install what omnimedia needs on a fresh Debian machine: the system tools named in SYSTEM_TOOLS (default
# espeak-ng, which speaks the sample media; media is decoded in-process by PyAV, which bundles FFmpeg's libraries),
# and a .venv with the project. infra/test.sh asks for ffmpeg, sox and openssl too (test media, certificates).
# Sourced by infra/quickstart.sh and infra/test.sh. Idempotent.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi; }

missing=()
for tool in ${SYSTEM_TOOLS:-espeak-ng}; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing system packages (missing: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || {
    as_root apt-get update -qq >/dev/null && as_root apt-get install -y -qq "${missing[@]}" >/dev/null; }
fi

PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
stamp=".venv/.omnimedia-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "installing omnimedia into .venv (first run takes a few minutes: torch is large)"
  .venv/bin/pip install -q -e ".[dev]"
  touch "$stamp"
fi
export PATH="$ROOT/.venv/bin:$PATH"
