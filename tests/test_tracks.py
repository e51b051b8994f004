"""Translated subtitle tracks: one job per language, created with the transcription's success, translating its cues
as text (the same cues, the same start and end times, lines shaped for the target script, speakers kept as voice
tags); a language outside the model's refused at submit; a failed language fails alone and is retried alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pysubs2
import pytest
from fastapi.testclient import TestClient

from core.jobs import machine
from core.jobs.outputs import render
from core.jobs.runner import RunStatus, run_until_settled
from core.review import cues_of
from core.schema import LOCAL_TENANT, Job
from models.errors import TaskInputError
from models.tasks import parse_params
from models.translation import CJK_LINE_CHARS, batches, parse_lines
from tests.embedded import clear_caches, embedded_engine, use_embedded
from tests.support import runner_on, speech


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: Path):  # type: ignore[no-untyped-def]
    with embedded_engine(
        monkeypatch, tmp_path / "data", tiny_model, OMNIMEDIA_RETRY_BACKOFF_S="0.01", OMNIMEDIA_MAX_NEW_TOKENS_CAP="40"
    ) as parts:
        yield parts


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("talk")
    return speech(root / "talk.wav", "The flood barrier held. The river fell. The town was dry by morning.", 0.5)


def submit(env: Any, path: Path | None, task: str = "transcribe", source: str = "", **params: object) -> str:
    from core.jobs.rows import JobRequest, prepare_job
    from core.uploads import store_upload

    settings, sessions, storage, _ = env
    with sessions() as session:
        ref = source
        if path is not None:
            with path.open("rb") as fh:
                ref = store_upload(session, storage, settings, LOCAL_TENANT, path.name, None, fh).id
        job = prepare_job(session, storage, settings, JobRequest(LOCAL_TENANT, task, ref, dict(params)))
        session.commit()
        return job.id


def job_of(env: Any, job_id: str) -> Job:
    with env[1]() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def times(srt: bytes) -> list[tuple[int, int]]:
    return [(e.start, e.end) for e in pysubs2.SSAFile.from_string(srt.decode())]


def test_each_language_is_a_track_on_the_source_cue_times(env: Any, talk: Path) -> None:
    settings, sessions, storage, engine = env
    runner = runner_on(settings, sessions, storage, engine, "w")
    parent_id = submit(env, talk, max_new_tokens=30, subtitle_languages=["de", "Japanese"])
    assert run_until_settled(runner, parent_id).status is RunStatus.SUCCEEDED
    parent = job_of(env, parent_id)
    assert parent.result is not None
    tracks = parent.result["subtitle_tracks"]
    assert set(tracks) == {"de", "ja"}, "names and codes both accepted, stored as codes"
    source_cues = cues_of(parent.result)
    source_srt = render(parent.id, parent.task, parent.result, "srt")
    assert len(source_cues) >= 2
    for language, track_id in tracks.items():
        assert run_until_settled(runner, track_id).status is RunStatus.SUCCEEDED
        track = job_of(env, track_id)
        assert track.result is not None and track.result["language"] == language
        assert [(s["start"], s["end"]) for s in track.result["segments"]] == [(c.start, c.end) for c in source_cues]
        srt = render(track.id, track.task, track.result, "srt")
        assert times(srt) == times(source_srt), "the same cues at the same times"
        assert len(pysubs2.SSAFile.from_string(render(track.id, track.task, track.result, "vtt").decode())) == len(
            source_cues
        )
        if language == "ja":
            assert all(len(line) <= CJK_LINE_CHARS for s in track.result["segments"] for line in s["text"].split("\n"))


def test_a_language_the_model_does_not_write_is_refused_at_submit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: Path, talk: Path
) -> None:
    with pytest.raises(TaskInputError, match="klingon"):
        parse_params("transcribe", {"subtitle_languages": ["de", "klingon"]})
    use_embedded(monkeypatch, tmp_path / "data", tiny_model)
    from api.app import create_app

    with TestClient(create_app()) as client:
        upload = client.post("/v1/uploads", files={"file": (talk.name, talk.read_bytes())}).json()
        body = {"task": "transcribe", "input": upload["id"], "params": {"subtitle_languages": ["tlh"]}}
        refused = client.post("/v1/jobs", json=body)
        assert refused.status_code == 422 and "tlh" in refused.text, refused.text
    clear_caches()


class FailsFor:
    """The real engine, except for requests whose prompt names `language`: a fault in one language only."""

    def __init__(self, inner: Any, language: str) -> None:
        self.inner, self.language = inner, language

    def generate_batch(self, requests: list[Any]) -> list[Any]:
        if any(self.language in (getattr(r.params, "text", None) or "") for r in requests):
            raise RuntimeError(f"injected fault in {self.language}")
        return self.inner.generate_batch(requests)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_failed_language_fails_alone_and_is_retried_alone(env: Any, talk: Path) -> None:
    settings, sessions, storage, engine = env
    good = runner_on(settings, sessions, storage, engine, "w")
    faulty = runner_on(settings, sessions, storage, FailsFor(engine, "French"), "w")
    parent_id = submit(env, talk, max_new_tokens=16, subtitle_languages=["de", "fr"])
    assert run_until_settled(good, parent_id).status is RunStatus.SUCCEEDED
    tracks = job_of(env, parent_id).result["subtitle_tracks"]  # type: ignore[index]
    assert run_until_settled(faulty, tracks["de"]).status is RunStatus.SUCCEEDED
    assert run_until_settled(faulty, tracks["fr"]).status is RunStatus.FAILED
    german = job_of(env, tracks["de"])
    assert job_of(env, parent_id).state == "succeeded" and german.state == "succeeded"
    with sessions() as session:
        assert machine.requeue(session, tracks["fr"])  # the user's retry of the one language
    assert run_until_settled(good, tracks["fr"]).status is RunStatus.SUCCEEDED
    assert job_of(env, tracks["de"]).finished_at == german.finished_at, "the other language was not redone"


def test_speakers_carry_into_a_track_added_later_as_voice_tags(env: Any) -> None:
    """A track asked for after the fact (task subtitles, input job:<id>) of a diarized transcript."""
    from core.jobs.machine import Transition
    from core.jobs.rows import JobRequest, add_jobs, queued_job

    settings, sessions, storage, engine = env
    result = {
        "text": "Good evening. The river rose.",
        "media_kind": "audio",
        "duration_s": 6.0,
        "language": "en",
        "segments": [
            {"start": 0.0, "end": 2.5, "text": "Good evening.", "speaker": "Ada"},
            {"start": 3.0, "end": 5.5, "text": "The river rose.", "speaker": "Ben"},
        ],
        "speakers": [{"label": "Ada", "name": None}, {"label": "Ben", "name": None}],
    }
    with sessions() as session:
        source = queued_job(settings, JobRequest(LOCAL_TENANT, "transcribe"), "file:///news.wav")
        add_jobs(session, [source])
        session.commit()
        assert machine.start(session, source.id, "w", 60)
        assert machine.transition(session, source.id, Transition.SUCCEED, "done", "w", result=result)
    track_id = submit(env, None, "subtitles", f"job:{source.id}", target_language="de", max_new_tokens=12)
    assert (
        run_until_settled(runner_on(settings, sessions, storage, engine, "w"), track_id).status is RunStatus.SUCCEEDED
    )
    track = job_of(env, track_id)
    vtt = render(track.id, track.task, track.result or {}, "vtt").decode()
    assert "<v Ada>" in vtt and "<v Ben>" in vtt
    assert [(s["start"], s["end"]) for s in (track.result or {})["segments"]] == [(0.0, 2.5), (3.0, 5.5)]


def test_batches_give_each_cue_its_neighbours_and_every_cue_a_line() -> None:
    texts = [f"line {i}" for i in range(30)]
    parts = batches(texts, size=12, context=2)
    assert [(p.start, p.end) for p in parts] == [(0, 12), (12, 24), (24, 30)]
    assert parts[1].before == ["line 10", "line 11"] and parts[1].after == ["line 24", "line 25"]
    assert parse_lines("1. eins\n2. zwei\n3. drei", 3) == ["eins", "zwei", "drei"]
    assert all(parse_lines("no numbers at all here", 3)), "an unnumbered answer still gives every cue text"


def test_a_track_made_before_a_correction_is_marked_stale(env: Any, talk: Path) -> None:
    from core.jobs.tracks import stale_languages
    from core.review import CueEdit, RevisionRequest, revise

    settings, sessions, storage, engine = env
    runner = runner_on(settings, sessions, storage, engine, "w")
    parent_id = submit(env, talk, max_new_tokens=12, subtitle_languages=["de"])
    assert run_until_settled(runner, parent_id).status is RunStatus.SUCCEEDED
    track_id = job_of(env, parent_id).result["subtitle_tracks"]["de"]  # type: ignore[index]
    assert run_until_settled(runner, track_id).status is RunStatus.SUCCEEDED
    with sessions() as session:
        parent = session.get(Job, parent_id)
        assert parent is not None and stale_languages(session, parent) == []
        revise(session, parent, RevisionRequest(base=0, edits=[CueEdit(index=0, text="Corrected")]), "Ada")
        session.refresh(parent)
        assert stale_languages(session, parent) == ["de"]
