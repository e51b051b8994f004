"""Bulk archive captioning through the embedded CLI with the tiny model: outputs, dedup, bad files, resume."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.archive_corpus import Archive, build_archive
from tests.support import env_for, wait_for

pytestmark = pytest.mark.slow
ARGS = ["--task", "custom", "-p", "prompt=Describe this.", "-p", "segment_seconds=6", "--formats", "srt,vtt,json"]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Archive:
    return build_archive(tmp_path_factory.mktemp("archive") / "root", long_audio_s=40)


def caption(data: Path, out: Path, archive: Archive, model: Path, *extra: str) -> subprocess.Popen[str]:
    env = env_for(OMNIMEDIA_DATA_DIR=str(data), OMNIMEDIA_MODEL=str(model), OMNIMEDIA_MAX_NEW_TOKENS_CAP="4")
    cmd = [sys.executable, "-m", "cli", "caption", str(archive.root), "--out", str(out), "--json", *ARGS, *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str]) -> str:
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    return stdout


def manifest(out: Path) -> dict[str, dict]:
    lines = (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return {row["path"]: row for row in map(json.loads, lines)}


def running_events(data: Path) -> Counter[str]:
    with sqlite3.connect(data / "omnimedia.db") as db:
        rows = db.execute("SELECT job_id FROM job_events WHERE to_state = 'running'").fetchall()
    return Counter(job_id for (job_id,) in rows)


RUN_REPORTS = {"report.html", "report-summary.json"}  # of each run (its wall time, what it did): not sidecars


def sidecars(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.suffix in (".srt", ".vtt", ".json") and p.relative_to(out).as_posix() not in RUN_REPORTS
    }


def test_archive_outputs_dedup_and_bad_files(tmp_path: Path, archive: Archive, tiny_model: Path) -> None:
    assert archive.file_count == 51  # 50 files + the long one
    out = tmp_path / "out"
    stdout = finish(caption(tmp_path / "data", out, archive, tiny_model))
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["event"] == "summary"
    rows = manifest(out)
    for rel in archive.good:
        row = rows[rel]
        assert row["state"] == "succeeded", row
        stem = rel.rsplit(".", 1)[0]
        expected = {f"{stem}.json"} if rel.startswith("scans/") else {f"{stem}.{f}" for f in ("srt", "vtt", "json")}
        assert set(row["outputs"]) == expected
        assert all((out / o).is_file() and (out / o).stat().st_size > 0 for o in expected)
    for rel in archive.bad:
        assert rows[rel]["state"] == "failed" and rows[rel]["error"], rel
    assert rows["notes/README.txt"]["state"] == "skipped" and "not a media file" in rows["notes/README.txt"]["error"]
    assert rows["radio/loop"]["state"] == "skipped" and "loop" in rows["radio/loop"]["error"]
    assert not any(path.startswith(".hidden") for path in rows)
    # duplicates share one job, which ran once
    runs = running_events(tmp_path / "data")
    for copy, original in archive.duplicates:
        assert rows[copy]["job_id"] == rows[original]["job_id"]
        assert rows[copy]["reused"] != rows[original]["reused"], "one path ran, the other reused its result"
        assert runs[rows[copy]["job_id"]] == 1
    unique_contents = {rows[r]["sha256"] for r in archive.good + archive.bad + ["notes/README.txt"]}
    assert len(runs) == len(unique_contents) == len(archive.good) + len(archive.bad) + 1 - len(archive.duplicates)
    assert all(count == 1 for count in runs.values())
    # a rerun redoes nothing
    finish(caption(tmp_path / "data", tmp_path / "out2", archive, tiny_model))
    assert running_events(tmp_path / "data") == runs
    assert sidecars(tmp_path / "out2") == sidecars(out)


def test_kill_minus_9_then_rerun_redoes_nothing(tmp_path: Path, archive: Archive, tiny_model: Path) -> None:
    reference = tmp_path / "reference"
    finish(caption(tmp_path / "ref-data", reference, archive, tiny_model))

    data, out = tmp_path / "data", tmp_path / "out"
    proc = caption(data, out, archive, tiny_model, "--prefetch", "0")

    def some_done() -> bool:
        if not (data / "omnimedia.db").exists():
            return False
        try:
            with sqlite3.connect(data / "omnimedia.db") as db:
                done = db.execute("SELECT count(*) FROM jobs WHERE state = 'succeeded'").fetchone()[0]
                segments = db.execute("SELECT count(*) FROM job_segments").fetchone()[0]
        except sqlite3.OperationalError:
            return False
        return done >= 10 and segments > done

    wait_for(some_done, 300, "ten finished jobs", 0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(data / "omnimedia.db") as db:
        finished_before = {r[0] for r in db.execute("SELECT id FROM jobs WHERE state IN ('succeeded', 'failed')")}
        segments_before = db.execute('SELECT job_id, "index", created_at FROM job_segments').fetchall()
    finish(caption(data, out, archive, tiny_model))
    runs = running_events(data)
    assert finished_before and all(runs[job_id] == 1 for job_id in finished_before), "finished jobs were redone"
    with sqlite3.connect(data / "omnimedia.db") as db:
        segments_after = set(db.execute('SELECT job_id, "index", created_at FROM job_segments').fetchall())
    assert set(segments_before) <= segments_after, "segments finished before the kill were rewritten"
    assert sidecars(out) == sidecars(reference)
    assert {k: (v["state"], v["outputs"]) for k, v in manifest(out).items()} == {
        k: (v["state"], v["outputs"]) for k, v in manifest(reference).items()
    }


def test_s3_prefix_in_and_out(tmp_path: Path, s3, tiny_model: Path, media: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    client = s3.client()
    client.create_bucket(Bucket="archive-in")
    for name in ("speech_wav", "video_av"):
        client.upload_file(str(media[name]), "archive-in", f"tapes/2001/{media[name].name}")
    client.put_object(Bucket="archive-in", Key="tapes/2001/notes.txt", Body=b"not media")
    env = env_for(
        OMNIMEDIA_DATA_DIR=str(tmp_path / "data"),
        OMNIMEDIA_MODEL=str(tiny_model),
        OMNIMEDIA_MAX_NEW_TOKENS_CAP="4",
        OMNIMEDIA_S3_ENDPOINT_URL=s3.endpoint,
        OMNIMEDIA_S3_ACCESS_KEY=s3.access_key,
        OMNIMEDIA_S3_SECRET_KEY=s3.secret_key,
    )
    cmd = [
        sys.executable,
        "-m",
        "cli",
        "caption",
        "s3://archive-in/tapes",
        "--task",
        "transcribe",
        "--out",
        "s3://archive-in/captions/",
        "--json",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    keys = {o["Key"] for o in client.list_objects_v2(Bucket="archive-in", Prefix="captions/")["Contents"]}
    assert {"captions/2001/speech.srt", "captions/2001/clip.vtt", "captions/manifest.jsonl"} <= keys
    manifest_rows = client.get_object(Bucket="archive-in", Key="captions/manifest.jsonl")["Body"].read().decode()
    states = {row["path"]: row["state"] for row in map(json.loads, manifest_rows.splitlines())}
    assert states == {"2001/speech.wav": "succeeded", "2001/clip.mp4": "succeeded", "2001/notes.txt": "skipped"}


def test_an_archive_run_writes_each_translated_track_beside_its_source_track(tmp_path: Path, tiny_model: Path) -> None:
    from tests.support import speech

    root = tmp_path / "talks"
    root.mkdir()
    speech(root / "briefing.wav", "The flood barrier held. The river fell back overnight.", 0.5)
    env = env_for(
        OMNIMEDIA_DATA_DIR=str(tmp_path / "data"), OMNIMEDIA_MODEL=str(tiny_model), OMNIMEDIA_MAX_NEW_TOKENS_CAP="16"
    )
    cmd = [sys.executable, "-m", "cli", "caption", str(root), "--out", str(tmp_path / "out"), "--task", "transcribe"]
    cmd += ["--formats", "srt,vtt,json", "--subtitle-languages", "de,ja"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "out"
    for name in ("briefing.srt", "briefing.de.srt", "briefing.de.vtt", "briefing.ja.srt", "briefing.ja.vtt"):
        assert (out / name).is_file(), sorted(p.name for p in out.iterdir())
    source, german = (out / "briefing.srt").read_text(), (out / "briefing.de.srt").read_text()
    assert [line for line in source.splitlines() if "-->" in line] == [
        line for line in german.splitlines() if "-->" in line
    ], "the same cue times"
    listed = manifest(out)["briefing.wav"]["outputs"]
    assert "briefing.de.srt" in listed and "briefing.ja.vtt" in listed
    assert "subtitle_tracks" not in json.loads((out / "briefing.json").read_text()), "no job ids in the sidecar"
