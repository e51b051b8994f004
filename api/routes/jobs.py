"""Jobs: submit, read, list, cancel, retry, results and speech."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from api import openapi
from api.deps import SessionDep, SettingsDep, StorageDep, TenantDep
from api.lookup import load_owned
from api.problems import PROBLEM_RESPONSES, Problem
from api.schemas import JobCreate, JobEventOut, JobList, JobOut
from core import intake
from core.config import Settings
from core.errors import ProblemKind
from core.idempotency import idempotent_job
from core.jobs import machine
from core.jobs.outputs import CONTENT_TYPES, TEXT_FORMATS, formats_for, render
from core.jobs.tracks import track_of
from core.jobs.transcript import latest_result
from core.media_source import MediaSource
from core.queue import enqueue
from core.schema import Job, JobEvent
from core.states import JobState
from core.storage import ObjectNotFound, Storage
from models.tasks import TaskName
from models.translation import language_code

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=PROBLEM_RESPONSES)

RESULT_TYPES = {fmt: CONTENT_TYPES[fmt] for fmt in TEXT_FORMATS}


def job_out(job: Job) -> JobOut:
    out = JobOut.model_validate(job)
    if job.segments_planned:
        out.progress = round(job.segments_done / job.segments_planned, 4)
    if job.state == JobState.SUCCEEDED and job.result is not None:
        out.result_formats = sorted({*formats_for(job.result), *(job.outputs or {})})
    return out


@router.post("", status_code=202, response_model=JobOut, openapi_extra={"requestBody": openapi.job_request()})
async def submit_job(
    body: JobCreate,
    response: Response,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    tenant: TenantDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> JobOut:
    """Validate and queue a job. 202 with the job and a Location header. With an Idempotency-Key, the same
    key and body return the same job (no second job; one still queued is published again, in case the request
    that created it died before publishing it)."""
    # The busiest route: its database and broker work runs in one worker thread, and the answer is serialised
    # on the event loop (a sync route would take a second thread for that).
    job = await run_in_threadpool(_submit, body, session, storage, settings, tenant, idempotency_key)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job


def _submit(
    body: JobCreate, session: Session, storage: Storage, settings: Settings, tenant: str, idempotency_key: str | None
) -> JobOut:
    formats = None if body.formats is None else [str(f) for f in dict.fromkeys(body.formats)]
    request = json.dumps(body.model_dump(mode="json"), sort_keys=True).encode()
    asked = intake.JobRequest(tenant, body.task.value, body.input, body.params, body.webhook_url, formats)
    job, _ = intake.submit_job(session, storage, settings, asked, idempotency_key, request)
    return job_out(job)


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: str, session: SessionDep, tenant: TenantDep) -> JobOut:
    return job_out(load_owned(session, Job, job_id, tenant))


@router.get("", response_model=JobList)
def list_jobs(
    session: SessionDep,
    tenant: TenantDep,
    state: JobState | None = None,
    task: TaskName | None = None,
    limit: int = Query(50, ge=1, le=500),
    cursor: Annotated[
        str | None, Query(pattern="^[0-9a-f]{32}$", description="next_cursor of the previous page (a job id)")
    ] = None,
    idempotency_key: Annotated[
        str | None, Query(max_length=255, description="the job a POST with this Idempotency-Key created, if any")
    ] = None,
) -> JobList:
    """Newest first; filter by state and task; page with next_cursor (the last job of the page, as in `after`).
    A client that lost its 202 finds its job by the Idempotency-Key it sent."""
    query = select(Job).where(Job.tenant == tenant)
    if idempotency_key is not None:
        query = query.where(Job.id == idempotent_job(session, tenant, idempotency_key))
    if state:
        query = query.where(Job.state == state.value)
    if task:
        query = query.where(Job.task == task.value)
    if cursor:
        last = load_owned(session, Job, cursor, tenant)
        query = query.where(
            or_(Job.created_at < last.created_at, and_(Job.created_at == last.created_at, Job.id < last.id))
        )
    rows = list(session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)))
    next_cursor = rows[limit - 1].id if len(rows) > limit else None
    return JobList(data=[job_out(j) for j in rows[:limit]], next_cursor=next_cursor)


@router.get("/{job_id}/events", response_model=list[JobEventOut])
def job_events(job_id: str, session: SessionDep, tenant: TenantDep) -> list[JobEventOut]:
    load_owned(session, Job, job_id, tenant)
    events = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id))
    return [JobEventOut.model_validate(e) for e in events]


@router.post("/{job_id}/cancel", response_model=JobOut)
def cancel_job(job_id: str, session: SessionDep, tenant: TenantDep) -> JobOut:
    """Queued jobs cancel at once; running jobs stop at the next segment boundary."""
    job = load_owned(session, Job, job_id, tenant)
    if job.state.final:
        raise Problem(409, ProblemKind.JOB_FINISHED, "Job already finished", f"job is {job.state}")
    machine.request_cancel(session, job_id)
    session.refresh(job)
    return job_out(job)


@router.post("/{job_id}/retry", status_code=202, response_model=JobOut)
def retry_job(job_id: str, response: Response, session: SessionDep, settings: SettingsDep, tenant: TenantDep) -> JobOut:
    """Run a failed or canceled job again (attempts start over; finished segments are kept)."""
    job = load_owned(session, Job, job_id, tenant)
    if not machine.requeue(session, job_id):
        raise Problem(
            409, ProblemKind.JOB_NOT_RETRYABLE, "Only failed or canceled jobs can be retried", f"job is {job.state}"
        )
    enqueue(job_id, job.queue, settings)
    session.refresh(job)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job_out(job)


def _finished(job: Job) -> dict[str, Any]:
    if job.state != JobState.SUCCEEDED or job.result is None:
        raise Problem(409, ProblemKind.JOB_NOT_FINISHED, "Job has no result yet", f"job is {job.state}")
    return job.result


def _track(session: Session, job: Job, language: str) -> Job:
    """A transcription's translated track in `language`, finished (409 while it is not; 404 if never asked)."""
    code = language_code(language) or language
    track = track_of(session, job, code)
    if track is None:
        raise Problem(404, ProblemKind.FORMAT_NOT_AVAILABLE, "No such track", f"job {job.id} has no {language} track")
    if track.state != JobState.SUCCEEDED or track.result is None:
        why = f": {track.failure_reason}" if track.failure_reason else ""
        detail = f"the {code} track (job {track.id}) is {track.state}{why}"
        raise Problem(409, ProblemKind.JOB_NOT_FINISHED, "Track not ready", detail)
    return track


def _not_available(job: Job, fmt: str) -> Problem:
    return Problem(404, ProblemKind.FORMAT_NOT_AVAILABLE, "Format not available", f"job {job.id} has no {fmt} output")


@router.get(
    "/{job_id}/result",
    responses={200: {"content": {t: {} for t in RESULT_TYPES.values()}, "description": "The result file"}},
)
def get_result(
    job_id: str,
    session: SessionDep,
    tenant: TenantDep,
    format: str = Query("json", pattern="^(json|srt|vtt|txt|rttm)$"),
    language: str | None = Query(
        None, min_length=2, max_length=40, description="a translated subtitle track's language (subtitle_languages)"
    ),
) -> Response:
    """The result in any text format, rendered from the transcript's latest revision (the job's own result until
    someone corrects it: /v1/jobs/{id}/revisions), whether or not the job also wrote that format to storage."""
    job = load_owned(session, Job, job_id, tenant)
    _finished(job)
    if language is not None:
        job = _track(session, job, language)
    try:
        body = render(job.id, job.task, latest_result(session, job), format)  # corrections included
    except KeyError as exc:
        raise _not_available(job, format) from exc
    headers = {"Content-Disposition": f'inline; filename="{job.id}.{format}"'}
    return Response(body, media_type=RESULT_TYPES[format], headers=headers)


@router.get(
    "/{job_id}/video",
    responses={200: {"content": {"video/mp4": {}}, "description": "The video with its audio description mixed in"}},
)
def get_described_video(job_id: str, session: SessionDep, storage: StorageDep, tenant: TenantDep) -> Response:
    """The described copy of a video (describe_video with audio_description and description_mix): every stream of
    the original as it was, and one more audio stream, the programme with the narration mixed in."""
    job = load_owned(session, Job, job_id, tenant)
    _finished(job)
    key = (job.outputs or {}).get("video")
    size = storage.size(key) if key else None
    if key is None or size is None:
        raise _not_available(job, "video")

    copy = MediaSource(f"{job.id}.described.mp4", size, "video/mp4", key)
    headers = {"Content-Length": str(size), "Content-Disposition": f'attachment; filename="{copy.name}"'}
    return StreamingResponse(copy.chunks(storage), media_type=copy.media_type, headers=headers)


@router.get("/{job_id}/audio", responses={200: {"content": {"audio/wav": {}}, "description": "24 kHz WAV"}})
def get_audio(job_id: str, session: SessionDep, storage: StorageDep, tenant: TenantDep) -> Response:
    job = load_owned(session, Job, job_id, tenant)
    _finished(job)
    key = (job.outputs or {}).get("wav")
    if not key:
        raise _not_available(job, "wav")
    try:
        body = storage.get_bytes(key)
    except ObjectNotFound as exc:
        raise Problem(404, ProblemKind.OUTPUT_MISSING, "Output missing from storage", key) from exc
    return Response(body, media_type="audio/wav", headers={"Content-Disposition": f'inline; filename="{job.id}.wav"'})
