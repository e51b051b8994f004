"""Look and fix through the API: signed, expiring review links for a tenant's own job, corrections as revisions
(revision 0 kept; every format from the latest; conflicting saves refused; approval locks), quality checks in the
result, media served with HTTP Range, and /docs from the package's own assets."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core import quality
from core.config import Settings
from core.review import issue_link
from tests.review_stack import Reviewed, reviewed_job
from tests.support import TEST_SECRET_KEY


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[Reviewed]:
    with reviewed_job(tmp_path_factory.mktemp("review"), tiny_model) as found:
        yield found


def link(job: Reviewed) -> str:
    response = job.alpha.post(f"/v1/jobs/{job.job_id}/review-link", json={"expires_in_s": 3600})
    assert response.status_code == 201, response.text
    return str(response.json()["url"]).removeprefix(job.base)


def test_a_link_opens_the_page_only_for_its_own_job_and_only_until_it_expires(job: Reviewed) -> None:
    path = link(job)
    page = job.alpha.get(path, headers={"Authorization": ""})
    assert (
        page.status_code == 200
        and 'class="cue' in page.text
        and "script-src 'self'" in page.headers["content-security-policy"]
    )
    assert job.beta.post(f"/v1/jobs/{job.job_id}/review-link").status_code == 404, "another tenant's job: no link"
    token = path.removeprefix("/review/")
    body, signature = token.split(".")
    altered = f"{body[:-2]}{'A' if body[-2] != 'A' else 'B'}{body[-1]}.{signature}"
    settings = Settings(secret_key=TEST_SECRET_KEY)
    expired, _ = issue_link(settings, "alpha", job.job_id, -1, "test")
    foreign, _ = issue_link(Settings(secret_key="x" * 44), "alpha", job.job_id, 3600, "test")
    wrong_tenant, _ = issue_link(settings, "beta", job.job_id, 3600, "test")
    for bad in (altered, expired, foreign, wrong_tenant, "nonsense"):
        assert job.alpha.get(f"/review/{bad}").status_code == 404, bad
        assert job.alpha.get(f"/review/{bad}/media").status_code == 404, bad


def test_corrections_are_revisions_every_format_renders_the_latest_and_conflicts_are_refused(job: Reviewed) -> None:
    original = job.alpha.get(f"/v1/jobs/{job.job_id}/result", params={"format": "srt"}).text
    first = job.alpha.post(
        f"/v1/jobs/{job.job_id}/revisions",
        json={"base": 0, "edits": [{"index": 0, "text": "Corrected by a person"}], "author": "Ada"},
    )
    assert first.status_code == 201, first.text
    assert first.json()["number"] == 1 and first.json()["author"] == "Ada"
    assert first.json()["changes"][0]["after"] == "Corrected by a person"
    for fmt in ("srt", "vtt", "txt", "json"):
        assert "Corrected by a person" in job.alpha.get(f"/v1/jobs/{job.job_id}/result", params={"format": fmt}).text
    assert job.alpha.get(f"/v1/jobs/{job.job_id}/revisions/0", params={"format": "srt"}).text == original
    second = job.alpha.post(f"/v1/jobs/{job.job_id}/revisions", json={"base": 0, "edits": [{"index": 1, "text": "x"}]})
    assert second.status_code == 409 and "revision 1 was saved since by Ada" in second.json()["detail"], second.text
    listing = job.alpha.get(f"/v1/jobs/{job.job_id}/revisions").json()
    assert listing["latest"] == 1 and [r["number"] for r in listing["data"]] == [1]
    assert job.beta.get(f"/v1/jobs/{job.job_id}/revisions").status_code == 404


def test_quality_checks_are_in_the_result_and_follow_the_edits(job: Reviewed) -> None:
    result = job.alpha.get(f"/v1/jobs/{job.job_id}/result").json()
    assert set(result["quality"]) == set(quality.CHECKS)
    latest = job.alpha.get(f"/v1/jobs/{job.job_id}/revisions").json()["latest"]
    short = job.alpha.post(
        f"/v1/jobs/{job.job_id}/revisions", json={"base": latest, "edits": [{"index": 1, "start": 2.0, "end": 2.3}]}
    )
    assert short.status_code == 201, short.text
    revised = job.alpha.get(f"/v1/jobs/{job.job_id}/result").json()
    assert revised["quality"]["too_short"] >= result["quality"]["too_short"] + 1


def test_the_media_is_served_in_ranges(job: Reviewed) -> None:
    path = link(job)
    head = job.alpha.get(f"{path}/media", headers={"Range": "bytes=0-99"})
    assert head.status_code == 206 and len(head.content) == 100 and head.headers["content-type"] == "video/mp4"
    size = int(head.headers["content-range"].split("/")[1])
    tail = job.alpha.get(f"{path}/media", headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.headers["content-range"] == f"bytes {size - 10}-{size - 1}/{size}"
    whole = job.alpha.get(f"{path}/media")
    assert whole.status_code == 200 and len(whole.content) == size and whole.content[:100] == head.content
    assert job.alpha.get(f"{path}/media", headers={"Range": f"bytes={size}-"}).status_code == 416


def test_an_approved_transcript_is_locked(job: Reviewed) -> None:
    latest = job.alpha.get(f"/v1/jobs/{job.job_id}/revisions").json()["latest"]
    approved = job.alpha.post(f"/v1/jobs/{job.job_id}/approve")
    assert approved.status_code == 200 and approved.json()["approved_by"] == "tenant alpha"
    edit = job.alpha.post(
        f"/v1/jobs/{job.job_id}/revisions", json={"base": latest, "edits": [{"index": 0, "text": "y"}]}
    )
    assert edit.status_code == 409 and "locked" in edit.json()["detail"]


def test_the_docs_pages_load_their_assets_from_this_service(job: Reviewed) -> None:
    docs = job.alpha.get("/docs")
    assert docs.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in docs.text and "cdn" not in docs.text
    assert job.alpha.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    assert "cdn" not in docs.headers["content-security-policy"]


def test_the_review_command_prints_a_link_that_opens_without_a_key(job: Reviewed) -> None:
    cmd = [sys.executable, "-m", "cli", "review", job.job_id, "--api-url", job.base]
    done = subprocess.run(cmd, env=job.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    assert url.startswith(f"{job.base}/review/")
    assert httpx.get(url, timeout=30).status_code == 200
