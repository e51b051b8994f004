"""The review page in headless Chromium (Debian's, driven by Playwright), every request to any host but the API
refused: it plays the job's media, highlights the current cue and word as playback reaches them, seeks where a
word is clicked, saves an edit as a revision that the API's SRT then carries, refuses a conflicting save from a
second tab, shows script in model output or edits as text, and /docs renders from the package's assets. A
screenshot of the page is kept in test-artifacts/."""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.review_stack import Reviewed, reviewed_job
from tests.support import REPO

pytestmark = pytest.mark.slow
ARTIFACTS = REPO / "test-artifacts"
HOSTILE = '<script>window.__ran = 1</script><img src=x onerror="window.__ran = 2">'


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[Reviewed]:
    with reviewed_job(tmp_path_factory.mktemp("review-browser"), tiny_model) as found:
        yield found


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        found = p.chromium.launch(
            executable_path=shutil.which("chromium"),
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
        )
        yield found
        found.close()


def open_page(browser: Browser, job: Reviewed, path: str) -> Page:
    """A tab that may reach the API and nothing else."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    refused: list[str] = []

    def only_the_api(route: Any) -> None:
        if route.request.url.startswith(job.base):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_api)
    page.goto(f"{job.base}{path}")
    page.wait_for_selector("#cues .cue")
    return page


def wait_until(page: Page, predicate: str, timeout_s: float = 20.0) -> None:
    """Poll a JavaScript function until it returns true (the page's CSP forbids the eval that
    Page.wait_for_function uses; page.evaluate is not affected)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(predicate):
        assert time.monotonic() < deadline, f"not true within {timeout_s} s: {predicate}"
        time.sleep(0.05)


def link(job: Reviewed) -> str:
    return str(job.alpha.post(f"/v1/jobs/{job.job_id}/review-link").json()["url"]).removeprefix(job.base)


def test_playback_highlights_the_current_cue_and_word_and_a_click_seeks(browser: Browser, job: Reviewed) -> None:
    page = open_page(browser, job, link(job))
    page.evaluate(
        """() => {
        window.__marks = [];
        const media = document.getElementById("media");
        new MutationObserver((changes) => {
            for (const change of changes) {
                const el = change.target;
                if (el.classList.contains("cue") && el.classList.contains("current"))
                    window.__marks.push([Number(el.dataset.start), media.currentTime]);
            }
        }).observe(document.getElementById("cues"), {attributes: true, subtree: true, attributeFilter: ["class"]});
        return media.play();
    }"""
    )
    wait_until(page, "() => document.getElementById('media').currentTime > 5")
    marks = page.evaluate("window.__marks")
    assert len(marks) >= 2, marks
    assert all(0 <= now - start <= 0.3 for start, now in marks), marks
    assert page.locator(".word.current-word").count() <= 1
    page.evaluate("document.getElementById('media').pause()")
    word = page.locator(".word").nth(3)
    at = float(word.get_attribute("data-start") or "0")
    word.click()
    wait_until(page, f"() => Math.abs(document.getElementById('media').currentTime - {at}) < 0.05")
    wait_until(page, "() => document.querySelector('.word.current-word') !== null")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "review-page.png"), full_page=True)
    assert (ARTIFACTS / "review-page.png").stat().st_size > 10_000
    page.close()


def edit(page: Page, index: int, text: str) -> None:
    cue = page.locator("#cues .cue").nth(index)
    cue.locator(".edit").click()
    cue.locator(".editor textarea").fill(text)
    cue.locator(".editor .save").click()


def test_an_edit_saved_on_the_page_is_what_the_api_serves_and_revision_0_keeps_the_original(
    browser: Browser, job: Reviewed
) -> None:
    original = job.alpha.get(f"/v1/jobs/{job.job_id}/revisions/0", params={"format": "srt"}).text
    page = open_page(browser, job, link(job))
    before = int(page.locator("#revision").inner_text())
    with page.expect_navigation():
        edit(page, 1, "The barrier held, said the engineer")
    page.wait_for_selector("#cues .cue")
    assert int(page.locator("#revision").inner_text()) == before + 1
    assert (
        "The barrier held, said the engineer"
        in job.alpha.get(f"/v1/jobs/{job.job_id}/result", params={"format": "srt"}).text
    )
    assert job.alpha.get(f"/v1/jobs/{job.job_id}/revisions/0", params={"format": "srt"}).text == original
    page.close()


def test_a_second_tab_saving_on_an_old_revision_is_refused_with_a_reason(browser: Browser, job: Reviewed) -> None:
    path = link(job)
    first, second = open_page(browser, job, path), open_page(browser, job, path)
    with first.expect_navigation():
        edit(first, 0, "Saved first")
    edit(second, 2, "Saved second")
    wait_until(second, "() => document.getElementById('status').textContent.includes('Not saved')")
    status = second.locator("#status").inner_text()
    assert "was saved since" in status and "reload" in status, status
    srt = job.alpha.get(f"/v1/jobs/{job.job_id}/result", params={"format": "srt"}).text
    assert "Saved first" in srt and "Saved second" not in srt
    first.close()
    second.close()


def test_script_in_model_output_or_in_an_edit_shows_as_text_and_never_runs(browser: Browser, job: Reviewed) -> None:
    with sqlite3.connect(job.data_dir / "omnimedia.db") as db:  # as if the model had written it
        row = db.execute("SELECT result FROM jobs WHERE id = ?", (job.job_id,)).fetchone()
        import json

        result = json.loads(row[0])
        result["segments"][0]["words"][0]["word"] = HOSTILE
        db.execute("UPDATE jobs SET result = ?, revision = 0 WHERE id = ?", (json.dumps(result), job.job_id))
        db.execute("DELETE FROM transcript_revisions WHERE job_id = ?", (job.job_id,))
    page = open_page(browser, job, link(job))
    assert HOSTILE in page.locator("#cues").inner_text(), "the model's text is shown as it is, as text"
    with page.expect_navigation():
        edit(page, 1, f"edited {HOSTILE}")
    page.wait_for_selector("#cues .cue")
    assert page.locator("#cues").inner_text().count(HOSTILE) == 2
    assert page.evaluate("window.__ran") is None, "no script from a transcript ran"
    assert page.locator("#cues script, #cues img").count() == 0
    srt = job.alpha.get(f"/v1/jobs/{job.job_id}/result", params={"format": "srt"}).text
    assert ("<script" not in srt and "onerror" not in srt.split("‹img")[0]) or "<img" not in srt
    page.close()


def test_links_of_another_tenant_or_past_their_time_answer_404_in_the_browser(browser: Browser, job: Reviewed) -> None:
    page = browser.new_page()
    token = link(job).removeprefix("/review/")
    body, signature = token.split(".")
    response = page.goto(f"{job.base}/review/{body}x.{signature}")
    assert response is not None and response.status == 404
    page.close()


def test_the_docs_render_with_no_host_but_the_api(browser: Browser, job: Reviewed) -> None:
    page = browser.new_page()
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(job.base) else route.abort())
    page.goto(f"{job.base}/docs")
    page.wait_for_selector(".opblock", timeout=20_000)
    assert page.locator(".opblock").count() > 20
    page.close()
