"""`omnimedia submit` on the embedded default: SQLite + local folder + in-process worker, no servers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import env_for


def test_submit_runs_without_servers(tmp_path: Path, tiny_model: Path, media: dict[str, Path]) -> None:
    env = env_for(
        OMNIMEDIA_DATA_DIR=str(tmp_path / "data"),
        OMNIMEDIA_MODEL=str(tiny_model),
        OMNIMEDIA_MAX_NEW_TOKENS_CAP="6",
        # Unreachable servers prove nothing is contacted on the embedded path.
        OMNIMEDIA_BROKER_URL="redis://127.0.0.1:1/0",
    )
    cli = [sys.executable, "-m", "cli"]
    done = subprocess.run(
        [*cli, "submit", str(media["speech_wav"]), "--task", "transcribe", "--format", "vtt"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("WEBVTT") and "-->" in done.stdout
    assert (tmp_path / "data" / "omnimedia.db").is_file()
    # the result is rendered from the job's record: a CLI submit writes no result files to storage
    assert not list((tmp_path / "data" / "storage" / "tenants" / "local").glob("jobs/*/attempt-*/result.*"))

    bad = subprocess.run(
        [*cli, "submit", str(media["speech_wav"]), "--task", "ocr"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 1 and "does not accept audio" in bad.stderr

    listing = subprocess.run([*cli, "jobs"], env=env, capture_output=True, text=True, timeout=120)
    assert "succeeded" in listing.stdout and "failed" in listing.stdout


def test_cli_uploads_get_the_same_checks_as_the_api(tmp_path: Path) -> None:
    """The CLI stores uploads through the API's helper: an empty file and one over the upload limit are refused
    (the CLI used to store both and only fail later)."""
    env = env_for(OMNIMEDIA_DATA_DIR=str(tmp_path / "data"), OMNIMEDIA_MAX_UPLOAD_BYTES="1000")
    cli = [sys.executable, "-m", "cli"]
    empty, big = tmp_path / "empty.wav", tmp_path / "big.wav"
    empty.write_bytes(b"")
    big.write_bytes(b"\0" * 5000)
    for path, reason in ((empty, "0 bytes"), (big, "1000 bytes")):
        done = subprocess.run(
            [*cli, "submit", str(path), "--task", "transcribe"], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 2 and reason in done.stderr, done.stderr
    kept = [p for p in (tmp_path / "data" / "storage").rglob("uploads/*") if p.stat().st_size]
    assert kept == [], "nothing over the limit is stored"


def test_operator_commands_work_on_a_fresh_data_folder(tmp_path: Path) -> None:
    """`keys create` used to fail there with "unable to open database file"."""
    env = env_for(OMNIMEDIA_DATA_DIR=str(tmp_path / "never-made" / "data"))
    cli = [sys.executable, "-m", "cli"]
    key = subprocess.run(
        [*cli, "keys", "create", "--tenant", "first"], env=env, capture_output=True, text=True, timeout=120
    )
    assert key.returncode == 0 and key.stdout.startswith("omk_"), key.stderr
    listed = subprocess.run([*cli, "keys", "list"], env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and "first" in listed.stdout
