#!/usr/bin/env bash
# The test command: install, start Postgres/Redis if down (SeaweedFS is started by the test fixtures),
# then ruff, mypy, import-linter (the layers and no cycles), hadolint on the Dockerfiles, the compose file against
# the Compose Specification's schema, and pytest (slow end-to-end tests included).
set -euo pipefail
# The tests make their media with the ffmpeg and sox command-line tools; the service itself needs neither.
SYSTEM_TOOLS="ffmpeg espeak-ng sox openssl" source "$(dirname "$0")/bootstrap.sh"
# Speaker tests need voices recorded from different people: Festival's kal and ked (US men) and slt (US woman).
SYSTEM_PACKAGES="festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts" source "$ROOT/infra/packages.sh"
source "$ROOT/infra/services.sh"
cd "$ROOT"
echo "== ruff"; ruff check . && ruff format --check .
echo "== mypy"; mypy models core api workers cli bench
echo "== import-linter"; lint-imports --no-cache
echo "== hadolint"; hadolint --failure-threshold info infra/Dockerfile infra/Dockerfile.cuda infra/Dockerfile.vllm
echo "== compose schema"; check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
echo "== pytest"; python -m pytest -q -p no:cacheprovider "$@"
