"""Look and fix: review links, revisions and approval through the API (a tenant's key), and the review page itself
(the link's token is the credential: no key in the browser). The page is server-rendered HTML with one script
from this origin (api/static/review.js); the media plays from this origin with HTTP Range, so the page works with
no other host reachable."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, StreamingResponse
from pydantic import BaseModel, Field

from api.deps import SessionDep, SettingsDep, StorageDep, TenantDep
from api.lookup import load_owned
from api.problems import PROBLEM_RESPONSES, Problem
from api.review_page import review_html
from core import review
from core.errors import ProblemKind
from core.jobs.outputs import CONTENT_TYPES, render
from core.jobs.tracks import stale_languages
from core.jobs.transcript import latest_result, result_at, revisions
from core.media_source import byte_range, source_of
from core.schema import Job
from core.states import JobState

router = APIRouter(tags=["review"], responses=PROBLEM_RESPONSES)
STATIC = Path(__file__).resolve().parent.parent / "static"
ASSETS = {"review.js": "text/javascript; charset=utf-8", "review.css": "text/css; charset=utf-8"}
MAX_LINK_S = 7 * 24 * 3600


class ReviewLinkCreate(BaseModel):
    expires_in_s: int = Field(default=24 * 3600, ge=60, le=MAX_LINK_S)


class ReviewLinkOut(BaseModel):
    url: str
    expires_at: datetime


class RevisionOut(BaseModel):
    number: int
    author: str
    created_at: datetime
    changes: list[dict[str, Any]]


class RevisionList(BaseModel):
    latest: int
    approved_at: datetime | None
    approved_by: str | None
    stale_tracks: list[str] = Field(
        default_factory=list, description="translated tracks made from an older revision (run them again)"
    )
    data: list[RevisionOut]


def _finished(job: Job) -> Job:
    if job.state != JobState.SUCCEEDED or job.result is None:
        raise Problem(409, ProblemKind.JOB_NOT_FINISHED, "Job has no result yet", f"job is {job.state}")
    return job


def _listing(session: SessionDep, job: Job) -> RevisionList:
    rows = [RevisionOut.model_validate(r, from_attributes=True) for r in revisions(session, job)]
    return RevisionList(
        latest=job.revision,
        approved_at=job.approved_at,
        approved_by=job.approved_by,
        stale_tracks=stale_languages(session, job),
        data=rows,
    )


@router.post("/v1/jobs/{job_id}/review-link", status_code=201)
def create_review_link(
    job_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    tenant: TenantDep,
    body: Annotated[ReviewLinkCreate | None, Body()] = None,
) -> ReviewLinkOut:
    """A signed link to the job's review page, valid `expires_in_s` (default a day, at most a week)."""
    job = _finished(load_owned(session, Job, job_id, tenant))
    ttl = (body or ReviewLinkCreate()).expires_in_s
    token, expires = review.issue_link(settings, tenant, job.id, ttl, f"tenant {tenant}")
    return ReviewLinkOut(url=f"{str(request.base_url).rstrip('/')}/review/{token}", expires_at=expires)


@router.get("/v1/jobs/{job_id}/revisions")
def list_revisions(job_id: str, session: SessionDep, tenant: TenantDep) -> RevisionList:
    """Every revision of the job's transcript (0, the machine's, is the job's result), who made it and what
    changed; the latest one is what every format renders."""
    return _listing(session, _finished(load_owned(session, Job, job_id, tenant)))


@router.get("/v1/jobs/{job_id}/revisions/{number}")
def get_revision(job_id: str, number: int, session: SessionDep, tenant: TenantDep, format: str = "json") -> Response:
    """One revision in any text format."""
    job = _finished(load_owned(session, Job, job_id, tenant))
    result = result_at(session, job, number) if 0 <= number <= job.revision else None
    if result is None or format not in CONTENT_TYPES or format == "wav":
        raise Problem(
            404, ProblemKind.NOT_FOUND, "No such revision", f"job {job.id} has no revision {number} as {format}"
        )
    try:
        return Response(render(job.id, job.task, result, format), media_type=CONTENT_TYPES[format])
    except KeyError as exc:
        raise Problem(404, ProblemKind.FORMAT_NOT_AVAILABLE, "Format not available", format) from exc


@router.post("/v1/jobs/{job_id}/revisions", status_code=201)
def create_revision(job_id: str, edit: review.RevisionRequest, session: SessionDep, tenant: TenantDep) -> RevisionOut:
    """Save corrections made on revision `base`: 409 if the transcript moved on since or is approved."""
    job = _finished(load_owned(session, Job, job_id, tenant))
    row = review.revise(session, job, edit, f"tenant {tenant}")
    return RevisionOut.model_validate(row, from_attributes=True)


@router.post("/v1/jobs/{job_id}/approve")
def approve_transcript(job_id: str, session: SessionDep, tenant: TenantDep) -> RevisionList:
    """Approve the latest revision: the transcript is locked from then on."""
    job = _finished(load_owned(session, Job, job_id, tenant))
    review.approve(session, job, f"tenant {tenant}")
    session.refresh(job)
    return _listing(session, job)


# -- the page (the token is the credential) ----------------------------------------------------------------------


def _linked(session: SessionDep, settings: SettingsDep, token: str) -> tuple[Job, review.ReviewLink]:
    link = review.read_link(settings, token)
    job = session.get(Job, link.job_id) if link is not None else None
    if link is None or job is None or job.tenant != link.tenant or job.result is None:
        raise Problem(404, ProblemKind.NOT_FOUND, "No such review link", "the link is unknown, altered or expired")
    return job, link


@router.get("/review/{token}", response_class=HTMLResponse, include_in_schema=False)
def review_page(token: str, request: Request, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    job, _link = _linked(session, settings, token)
    result = latest_result(session, job)
    root = request.scope.get("root_path", "")
    return HTMLResponse(review_html(job, result, review.findings(job, result), f"{root}/review/{token}", root))


@router.get("/review/{token}/captions.vtt", include_in_schema=False)
def review_captions(token: str, session: SessionDep, settings: SettingsDep) -> Response:
    job, _ = _linked(session, settings, token)
    return Response(render(job.id, job.task, latest_result(session, job), "vtt"), media_type=CONTENT_TYPES["vtt"])


@router.get("/review/{token}/media", include_in_schema=False)
def review_media(
    token: str,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    range_header: Annotated[str | None, Header(alias="range")] = None,
) -> Response:
    """The job's media, with HTTP Range (a player seeks by asking for ranges; each answer at most 2 MiB)."""
    job, _ = _linked(session, settings, token)
    source = source_of(session, settings, storage, job)
    if source is None:
        raise Problem(404, ProblemKind.NOT_FOUND, "Media gone", "the job's input is no longer in storage")
    headers = {"Accept-Ranges": "bytes", "Content-Security-Policy": "sandbox", "Cache-Control": "private"}
    try:
        span = byte_range(range_header, source.size)
    except ValueError:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{source.size}"})
    if span is None:
        headers["Content-Length"] = str(source.size)
        return StreamingResponse(source.chunks(storage), media_type=source.media_type, headers=headers)
    start, end = span
    headers["Content-Range"] = f"bytes {start}-{end}/{source.size}"
    return Response(source.read(storage, start, end), status_code=206, media_type=source.media_type, headers=headers)


@router.post("/review/{token}/revisions", status_code=201, include_in_schema=False)
def review_save(token: str, edit: review.RevisionRequest, session: SessionDep, settings: SettingsDep) -> RevisionOut:
    job, link = _linked(session, settings, token)
    row = review.revise(session, job, edit, f"review link ({link.issued_by})")
    return RevisionOut.model_validate(row, from_attributes=True)


@router.post("/review/{token}/approve", include_in_schema=False)
def review_approve(token: str, session: SessionDep, settings: SettingsDep) -> RevisionList:
    job, link = _linked(session, settings, token)
    review.approve(session, job, f"review link ({link.issued_by})")
    session.refresh(job)
    return _listing(session, job)


@router.get("/review-assets/{name}", include_in_schema=False)
def review_asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise Problem(404, ProblemKind.NOT_FOUND, "Not found", name)
    return FileResponse(STATIC / name, media_type=ASSETS[name])
