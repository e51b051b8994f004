"""Translated subtitle tracks, each a job of its own (task `subtitles`, input `job:<id>`): a transcription that asks
for `subtitle_languages` creates one per language in its success transaction, so a language that fails fails alone
and is retried alone (the transcript and the other languages stand), and a tenant can add a language later. A track
translates the source's latest revision cue by cue (models.translation via the pipeline): the same cues, the same
start and end times, lines shaped for the target script, speakers kept as voice tags."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from core.jobs import machine
from core.jobs.failing import RunResult, RunStatus, count_final
from core.jobs.machine import Transition
from core.jobs.outputs import DEFAULT_FORMATS, write_outputs
from core.jobs.rows import JobRequest, queued_job
from core.jobs.transcript import cues_of, latest_result
from core.schema import Job
from core.states import JobState
from models.errors import TaskInputError
from models.tasks import SubtitlesParams, parse_params
from models.translation import shape_lines

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker
    from sqlalchemy.sql.elements import ColumnElement

    from core.config import Settings
    from core.storage import Storage
    from models.pipeline import MediaPipeline


class Worker(Protocol):
    """What a track's run needs of the job runner."""

    sessions: sessionmaker[Session]
    storage: Storage
    pipeline: MediaPipeline
    worker: str


SOURCE_PREFIX = "job:"


def track_jobs(settings: Settings, parent: Job, languages: list[str]) -> list[Job]:
    """The queued track jobs of a transcription that just succeeded (inserted in its success transaction)."""
    source = (parent.params or {}).get("language")
    jobs = []
    for language in languages:
        params: dict[str, Any] = {"target_language": language}
        if source:
            params["source_language"] = source
        request = JobRequest(parent.tenant, "subtitles", params=params, formats=parent.formats)
        job = queued_job(settings, request, f"{SOURCE_PREFIX}{parent.id}")
        job.webhook_url = parent.webhook_url
        jobs.append(job)
    return jobs


def run_track(
    runner: Worker, job: Job, attempt: int, held: ColumnElement[bool], still_held: Callable[[], bool]
) -> RunResult:
    """Translate the source job's transcript into one track and settle this job (`held`: the condition that this
    run still holds the job; `still_held`: asks the database now)."""
    params = parse_params(job.task, job.params)
    assert isinstance(params, SubtitlesParams)
    source_id = job.input_ref.removeprefix(SOURCE_PREFIX)
    with runner.sessions() as session:
        source = session.get(Job, source_id)
        if source is None or source.tenant != job.tenant or source.state != JobState.SUCCEEDED:
            raise TaskInputError(f"job {source_id} has no finished transcript to translate")
        result, revision = latest_result(session, source), source.revision
    cues = cues_of(result)
    origin = params.source_language or result.get("language")
    started = time.perf_counter()
    translated = runner.pipeline.translate([c.text.replace("\n", " ") for c in cues], origin, params)
    engine_s, texts = time.perf_counter() - started, translated.lines
    language = params.target_language
    segments: list[dict[str, Any]] = []
    for cue, text in zip(cues, texts, strict=True):
        segment: dict[str, Any] = {"start": cue.start, "end": cue.end, "text": shape_lines(text, language)}
        if cue.speaker:
            segment["speaker"] = cue.speaker
        segments.append(segment)
    track = {
        "text": " ".join(texts),
        "language": language,
        "segments": segments,
        "cue_track": True,  # these are the cues as shown: rendered one to one, never re-cut
        "media_kind": result.get("media_kind"),
        "duration_s": result.get("duration_s"),
        "variant": runner.pipeline.variant,
        "source_job": source_id,
        "source_revision": revision,
        "prompt_tokens": translated.prompt_tokens,
        "tokens": translated.tokens,
        "warnings": [] if cues else ["the source transcript has no cues: the track is empty"],
    }
    formats = list(DEFAULT_FORMATS if job.formats is None else job.formats)
    if formats and not still_held():
        return RunResult(RunStatus.SKIPPED, reason="lease lost")
    outputs = write_outputs(runner.storage, job.tenant, job.id, attempt, job.task, track, formats, [])
    with runner.sessions() as session:
        applied = machine.transition(
            session,
            job.id,
            Transition.SUCCEED,
            "succeeded",
            runner.worker,
            extra_where=held,
            known=job,
            result=track,
            outputs=outputs,
            failure_class=None,
            failure_reason=None,
            media_seconds=0.0,
            engine_seconds=engine_s,
        )
    if not applied:
        return RunResult(RunStatus.SKIPPED, reason="lease lost")
    count_final(job.task, JobState.SUCCEEDED, engine_s, 0.0)
    return RunResult(RunStatus.SUCCEEDED)


def track_of(session: Any, job: Job, language: str) -> Job | None:
    """A transcription's track job for `language` (from its result's `subtitle_tracks`)."""
    track_id = ((job.result or {}).get("subtitle_tracks") or {}).get(language)
    return session.get(Job, track_id) if track_id else None


def stale_languages(session: Any, job: Job) -> list[str]:
    """The languages whose finished track was translated from an older revision than the transcript's latest
    (corrected since: run the language again to bring it up to date)."""
    stale = []
    for language in sorted((job.result or {}).get("subtitle_tracks") or {}):
        track = track_of(session, job, language)
        if track is not None and track.result is not None and track.result.get("source_revision", 0) != job.revision:
            stale.append(language)
    return stale
