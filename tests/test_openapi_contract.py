"""The OpenAPI contract holds: schemathesis (every check, bounded examples per operation, the exceptions in
schemathesis.toml) against a real uvicorn API on the embedded default finds no server error and no conformance
failure."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from core import migrate
from tests.support import REPO, api_key, env_for, running_api

pytestmark = pytest.mark.slow
ADMIN = "contract-admin-token"


def test_schemathesis_finds_no_failure(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    migrate.upgrade(f"sqlite:///{data / 'omnimedia.db'}")
    env = env_for(
        OMNIMEDIA_DATA_DIR=str(data),
        OMNIMEDIA_MODEL=str(tmp_path / "no-model"),
        OMNIMEDIA_ADMIN_TOKEN=ADMIN,
        OMNIMEDIA_ALLOW_ANONYMOUS="false",
    )
    key = api_key(env, "contract")
    with running_api(env, tmp_path / "api.log") as running:
        st = Path(sys.executable).parent / "st"
        run = subprocess.run(
            [
                str(st),
                "--config-file",
                str(REPO / "schemathesis.toml"),
                "run",
                f"{running.base}/openapi.json",
                "--checks",
                "all",
                "--workers",
                "1",
                "--seed",
                "1",
            ],
            env={**env, "OMNIMEDIA_ST_KEY": key, "OMNIMEDIA_ST_ADMIN_TOKEN": ADMIN},
            cwd=tmp_path,  # its cache too
            capture_output=True,
            text=True,
            timeout=600,
        )
    summary = "\n".join(run.stdout.splitlines()[-25:])
    print(summary)
    assert run.returncode == 0, run.stdout[-6000:]
    tested = re.search(r"Tested: (\d+)", run.stdout)
    assert tested and int(tested.group(1)) >= 40, summary  # every operation, the search, speakers and reports too
    assert re.search(r"(\d+) generated, \1 passed", run.stdout), summary
