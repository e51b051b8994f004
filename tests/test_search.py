"""Search across a tenant's transcripts, on Postgres (tsvector + GIN, websearch_to_tsquery) and SQLite (FTS5):
found at its time with a highlighted, escaped snippet; phrases and boolean queries; never another tenant's; indexed
in the job's final transaction (a job that did not succeed is not searchable)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from core import migrate, search
from core.config import Settings
from core.db import make_engine
from core.jobs import machine
from core.jobs.machine import Transition
from core.jobs.rows import JobRequest, add_jobs, queued_job
from tests.support import postgres_database

TALK = [
    (0.0, 4.0, "Good evening and welcome to the programme.", "Speaker 1"),
    (4.0, 9.5, "Tonight the flood barrier held for the first time since it was built.", "Speaker 1"),
    (9.5, 14.0, "The river rose two metres but the town stayed dry.", "Speaker 2"),
    (14.0, 18.0, "Engineers say the dam upstream helped as well.", "Speaker 2"),
]


@pytest.fixture(params=["sqlite", "postgres"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'search.db'}"
        migrate.upgrade(url)
        engine = make_engine(url)
        yield sessionmaker(engine)
        engine.dispose()
        return
    with postgres_database() as url:
        migrate.upgrade(url)
        engine = make_engine(url, Settings())
        yield sessionmaker(engine)
        engine.dispose()


def finished(
    sessions: sessionmaker[Session],
    tenant: str,
    lines: list[tuple[float, float, str, str]],
    succeed: bool = True,
    name: str = "evening-news.mp4",
) -> str:
    """A transcribe job that ends through the state machine, with this transcript as its result."""
    with sessions() as session:
        job = queued_job(Settings(), JobRequest(tenant, "transcribe", params={"language": "en"}), f"file:///{name}")
        add_jobs(session, [job])
        session.commit()
        assert machine.start(session, job.id, "w", 60)
        result = {
            "text": " ".join(t for _, _, t, _ in lines),
            "language": "en",
            "segments": [{"start": a, "end": b, "text": t, "speaker": who} for a, b, t, who in lines],
        }
        step = Transition.SUCCEED if succeed else Transition.FAIL
        assert machine.transition(session, job.id, step, "done", "w", result=result if succeed else None)
        return job.id


def test_a_phrase_is_found_at_its_time_with_an_escaped_highlighted_snippet(sessions: sessionmaker[Session]) -> None:
    job = finished(sessions, "alpha", TALK)
    with sessions() as session:
        (hit,) = search.search(session, "alpha", '"flood barrier"')
    assert (hit.job_id, hit.start, hit.end, hit.speaker) == (job, 4.0, 9.5, "Speaker 1")
    assert hit.file_name == "evening-news.mp4" and re.search(r"<mark>[^<]*flood", hit.snippet, re.IGNORECASE)


def test_phrases_and_boolean_queries(sessions: sessionmaker[Session]) -> None:
    finished(sessions, "alpha", TALK)
    with sessions() as session:

        def starts(query: str) -> list[float]:
            return sorted(hit.start for hit in search.search(session, "alpha", query))

        assert starts('"barrier held"') == [4.0]
        assert starts('"held barrier"') == []
        assert starts("flood OR dam") == [4.0, 14.0]
        assert starts("town -river") == []
        assert starts("river -flood") == [9.5]
        assert starts('engineers "dam upstream"') == [14.0]
        assert starts('"; DROP TABLE jobs; -- NEAR( *') == [], "any text is a query, never SQL or FTS syntax"


def test_another_tenants_transcripts_are_never_returned(sessions: sessionmaker[Session]) -> None:
    finished(sessions, "beta", TALK)
    ours = finished(sessions, "alpha", [(1.0, 2.0, "A flood barrier of our own.", "Speaker 1")])
    with sessions() as session:
        assert [hit.job_id for hit in search.search(session, "alpha", "flood barrier")] == [ours]
        assert search.search(session, "gamma", "flood") == []


def test_markup_in_a_transcript_is_escaped_and_unfinished_jobs_are_not_indexed(sessions: sessionmaker[Session]) -> None:
    finished(sessions, "alpha", [(0.0, 3.0, "<script>alert(1)</script> the flood came", None)])  # type: ignore[list-item]
    finished(sessions, "alpha", [(0.0, 3.0, "a failed flood job", None)], succeed=False)  # type: ignore[list-item]
    with sessions() as session:
        (hit,) = search.search(session, "alpha", "flood")
    assert "<script>" not in hit.snippet and "<mark>flood</mark>" in hit.snippet  # escaped (SQLite), dropped (Postgres)


def test_the_api_route_and_its_limits(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: Path) -> None:
    from fastapi.testclient import TestClient

    from tests.embedded import clear_caches, use_embedded

    use_embedded(monkeypatch, tmp_path / "data", tiny_model)
    from api.app import create_app
    from core.db import get_sessionmaker

    job = finished(get_sessionmaker(), "local", TALK)
    with TestClient(create_app(), raise_server_exceptions=False) as api:
        found = api.get("/v1/search", params={"q": '"flood barrier"'}).json()["data"]
        assert [(h["job_id"], h["start"], h["end"]) for h in found] == [(job, 4.0, 9.5)]
        assert api.get("/v1/search", params={"q": ""}).status_code == 422
        assert api.get("/v1/search", params={"q": "x", "limit": 1000}).status_code == 422
    clear_caches()
