#!/usr/bin/env bash
# Install the Debian packages named in SYSTEM_PACKAGES that are not installed yet (packages that put no command of
# their own on the PATH, such as Festival's voices). Sourced by infra/test.sh. Idempotent.
set -euo pipefail
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi; }
wanted=()
for package in ${SYSTEM_PACKAGES:-}; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || wanted+=("$package")
done
if [ ${#wanted[@]} -gt 0 ]; then
  echo "installing system packages (missing: ${wanted[*]})"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get install -y -qq "${wanted[@]}" >/dev/null 2>&1 || {
    as_root apt-get update -qq >/dev/null && as_root apt-get install -y -qq "${wanted[@]}" >/dev/null; }
fi
