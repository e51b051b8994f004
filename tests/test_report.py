"""What a run did and cost: the report of an archive run agrees with its manifest and renders in Chromium; a
batch's report counts every line and prices its engine time."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.embedded import clear_caches, use_embedded
from tests.support import chromium, env_for


def test_an_archive_runs_report_equals_its_manifest_and_renders(
    tmp_path: Path, tiny_model: Path, media: dict[str, Path]
) -> None:
    source = tmp_path / "archive"
    (source / "tapes").mkdir(parents=True)
    shutil.copy(media["speech_wav"], source / "tapes" / "talk.wav")
    shutil.copy(media["tone_mp3"], source / "tone.mp3")
    (source / "notes.wav").write_text("meeting notes, not audio\n" * 40)
    env = env_for(
        OMNIMEDIA_DATA_DIR=str(tmp_path / "data"),
        OMNIMEDIA_MODEL=str(tiny_model),
        OMNIMEDIA_MAX_NEW_TOKENS_CAP="4",
        OMNIMEDIA_ACCELERATOR_HOUR_COST="2.5",
    )
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "cli", "caption", str(source), "--task", "caption_audio", "--out", str(out), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    report = json.loads((out / "report-summary.json").read_text())
    assert report["files"] == len(manifest) == 3
    for state in {m["state"] for m in manifest}:
        files = [m for m in manifest if m["state"] == state]
        assert report["by_state"][state]["files"] == len(files)
        hours = sum(m.get("duration_s") or 0.0 for m in files) / 3600
        assert report["by_state"][state]["media_hours"] == pytest.approx(hours, abs=1e-4)
    assert report["media_hours"] == pytest.approx(report["by_state"]["succeeded"]["media_hours"], abs=1e-4)
    engine_h, media_h = report["engine_s"] / 3600, report["media_s"] / 3600
    assert report["cost_per_media_hour"] == pytest.approx(engine_h * 2.5 / media_h, rel=1e-2)
    assert report["realtime_factor"] > 0 and report["failures"], "the text file is reported with its reason"
    dom = chromium((out / "report.html").as_uri(), tmp_path, "report")
    assert "Captioning of archive" in dom and "Hours of media by outcome" in dom and "<svg" in dom
    assert (tmp_path / "report.png").stat().st_size > 5000, "a screenshot of the rendered report"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: Path) -> Iterator[TestClient]:
    use_embedded(
        monkeypatch,
        tmp_path / "data",
        tiny_model,
        OMNIMEDIA_ACCELERATOR_HOUR_COST="1.0",
        OMNIMEDIA_ADMIN_TOKEN="stats-admin",
    )
    from api.app import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as client:
        yield client
    clear_caches()


def test_a_batch_report_counts_every_line(api: TestClient, media: dict[str, Path]) -> None:
    upload = api.post("/v1/uploads", files={"file": ("a.wav", media["speech_wav"].read_bytes())}).json()["id"]
    lines = [
        {"custom_id": "a", "task": "caption_audio", "input": upload},
        {"custom_id": "b", "task": "caption_audio", "input": upload},
        {"custom_id": "c", "task": "ocr", "input": "0" * 32},
    ]
    body = "\n".join(json.dumps(line) for line in lines)
    batch = api.post("/v1/batches", content=body, headers={"content-type": "application/jsonl"}).json()
    for _ in range(300):
        if api.get(f"/v1/batches/{batch['id']}").json()["state"] == "completed":
            break
        time.sleep(0.2)
    report = api.get(f"/v1/batches/{batch['id']}/report").json()
    page = api.get(f"/v1/batches/{batch['id']}/report", params={"format": "html"})
    assert report["files"] == 3 and report["by_state"]["succeeded"]["files"] == 2
    assert report["by_state"]["rejected"]["files"] == 1 and report["failures"]["invalid_line"]["files"] == 1
    assert report["cost_per_media_hour"] == pytest.approx(report["engine_s"] / report["media_s"], rel=1e-2)
    assert page.headers["content-type"].startswith("text/html") and "<svg" in page.text
    assert "content-security-policy" in page.headers


def test_the_stats_page_charts_the_last_day_and_says_what_does_not_apply(
    api: TestClient, media: dict[str, Path]
) -> None:
    upload = api.post("/v1/uploads", files={"file": ("a.wav", media["speech_wav"].read_bytes())}).json()["id"]
    job = api.post("/v1/jobs", json={"task": "caption_audio", "input": upload}).json()
    for _ in range(300):
        if api.get(f"/v1/jobs/{job['id']}").json()["state"] == "succeeded":
            break
        time.sleep(0.2)
    page = api.get("/admin/stats", headers={"Authorization": "Bearer stats-admin"}).text
    text = re.sub(r"<[^>]+>", " ", page)
    assert page.count("<svg") == 2 and "Jobs finished per hour" in text and "1 jobs" in text
    assert "Failures by class (last 24 h): nothing to show" in text
    assert "Not applicable: the embedded default runs jobs in this process" in text
    assert "not applicable (the embedded default has no maintenance worker)" in text
    assert "None" not in text


def test_a_runs_report_counts_the_caption_findings_of_its_files() -> None:
    from core.report import ReportLine, build_report, report_html

    lines = [
        ReportLine("a.mp4", "succeeded", 60, 5, quality={"reading_speed": 2, "too_short": 1, "overlap": 0}),
        ReportLine("b.mp4", "succeeded", 30, 3, quality={"reading_speed": 1, "too_short": 0, "overlap": 0}),
        ReportLine("c.mp4", "failed", 0, 1, failure_class="media", reason="not media"),
    ]
    report = build_report("run", lines, 10.0, None)
    assert report["quality"] == {"overlap": 0, "reading_speed": 3, "too_short": 1}
    assert "<th>caption findings to review</th><td>4</td>" in report_html(report)
