"""What the OpenAI-compatible routes share: their error shape, the models served, storing a request's media as an
upload, and waiting for the durable job underneath each call.

Every call is a job like any other (counted against the tenant's quota, listed in /v1/jobs, retried on worker
faults, Idempotency-Key honoured); the route answers when the job ends, or past `openai_wait_s` with an error that
names the job to poll."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from api.problems import Problem
from core import intake
from core.config import Settings
from core.db import get_sessionmaker
from core.errors import ProblemKind
from core.idempotency import find
from core.jobs.inputs import TEXT_ONLY
from core.owned import get_owned
from core.schema import Job
from core.states import FailureClass, JobState
from core.storage import Storage
from core.uploads import store_upload

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
CLIENT_FAILURES = {FailureClass.MEDIA, FailureClass.INVALID_INPUT, FailureClass.UNSUPPORTED}


def public_model_ids(settings: Settings) -> list[str]:
    """The model ids a client sees and may name, never a path on this machine: OMNIMEDIA_SERVED_MODEL_NAME, or a
    hub id as configured (Qwen/Qwen3-Omni-30B-A3B-Instruct), or a local checkpoint's folder name; and the name
    without its organisation."""
    configured = settings.model.rstrip("/")
    hub_id = _HUB_ID.fullmatch(configured) and not Path(configured).exists()
    public = settings.served_model_name or (configured if hub_id else PurePosixPath(configured).name)
    return list(dict.fromkeys([public, public.rsplit("/", 1)[-1]]))


def check_model(settings: Settings, model: str) -> None:
    if model not in public_model_ids(settings):
        detail = f"this model is not served here; GET /v1/models lists {', '.join(public_model_ids(settings))}"
        raise Problem(404, ProblemKind.MODEL_NOT_FOUND, "Model not found", detail)


@dataclass(frozen=True)
class Call:
    """One OpenAI-style call's job: what to run, on which bytes."""

    task: str
    params: dict[str, Any]
    media: IO[bytes] | None  # a file at its start (streamed to storage, never whole in memory); None: text only
    filename: str
    content_type: str | None = None
    speakers: tuple[tuple[str, IO[bytes]], ...] = ()  # named reference clips (known_speaker_references[])


def _sha256(media: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := media.read(1024 * 1024):
        digest.update(chunk)
    media.seek(0)
    return digest.hexdigest()


def submit(
    session: Session, storage: Storage, settings: Settings, tenant: str, call: Call, idempotency_key: str | None
) -> Job:
    """Store the call's media and queue its job; with an Idempotency-Key, a repeat of the same call (same media
    and parameters) gets the first call's job without storing its media again."""
    request = (_sha256(call.media) if call.media else "").encode() + repr(sorted(call.params.items())).encode()
    request += call.task.encode() + "".join(f"{name}={_sha256(clip)}" for name, clip in call.speakers).encode()
    if idempotency_key is not None:
        digest = hashlib.sha256(request).hexdigest()
        earlier = find(session, tenant, idempotency_key, digest, "jobs", settings.idempotency_ttl_s)
        found = get_owned(session, Job, earlier, tenant) if earlier else None
        if found is not None:
            return found
    upload = (
        store_upload(session, storage, settings, tenant, call.filename, call.content_type, call.media)
        if call.media is not None
        else None
    )
    params = dict(call.params)
    if call.speakers:
        clips = [
            store_upload(session, storage, settings, tenant, f"{name}.voice", None, clip)
            for name, clip in call.speakers
        ]
        params.update(speaker_names=[name for name, _ in call.speakers], speaker_references=[c.id for c in clips])
    asked = intake.JobRequest(tenant, call.task, upload.id if upload else TEXT_ONLY, params, formats=[])
    job, _ = intake.submit_job(session, storage, settings, asked, idempotency_key, request)
    return job


async def wait_final(job_id: str, tenant: str, timeout_s: float) -> Job:
    """The job once it ended; past `timeout_s` a 504 naming the job (it goes on: poll GET /v1/jobs/{id})."""
    deadline = time.monotonic() + timeout_s
    pause = 0.05
    while True:
        job = await run_in_threadpool(_read, job_id, tenant)
        if job.state.final:
            return job
        if time.monotonic() > deadline:
            problem = Problem(
                504,
                ProblemKind.JOB_STILL_RUNNING,
                "The job is still running",
                f"job {job_id} is still {job.state} after {timeout_s:.0f} s; poll GET /v1/jobs/{job_id} "
                f"and GET /v1/jobs/{job_id}/result",
            )
            problem.headers["Location"] = f"/v1/jobs/{job_id}"
            raise problem
        await asyncio.sleep(pause)
        pause = min(pause * 1.5, 0.5)


def _read(job_id: str, tenant: str) -> Job:
    with get_sessionmaker()() as session:
        job = get_owned(session, Job, job_id, tenant)
        if job is None:
            raise Problem(404, ProblemKind.JOB_NOT_FOUND, "Job not found", f"no job {job_id}")
        session.expunge(job)
        return job


def succeeded(job: Job) -> dict[str, Any]:
    """The job's result, or the error a client should see for why it has none."""
    if job.state == JobState.SUCCEEDED and job.result is not None:
        return job.result
    if job.state == JobState.CANCELED:
        raise Problem(409, ProblemKind.JOB_CANCELED, "The job was canceled", f"job {job.id} was canceled")
    status = 422 if job.failure_class in CLIENT_FAILURES else 502
    raise Problem(
        status,
        job.failure_class or "job_failed",
        "The job failed",
        f"job {job.id} failed: {job.failure_reason or 'unknown error'}",
    )


def sampling(temperature: float | None, top_p: float | None = None) -> dict[str, Any]:
    """OpenAI's sampling knobs as task parameters: temperature 0 (the default) is greedy decoding."""
    if not temperature:
        return {}
    params: dict[str, Any] = {"do_sample": True, "temperature": min(max(temperature, 0.01), 2.0)}
    if top_p is not None:
        params["top_p"] = min(max(top_p, 0.01), 1.0)
    return params
