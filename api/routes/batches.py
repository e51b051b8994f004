"""Batches: JSONL in the OpenAI Batch format (or the short form), or an S3 prefix with one task."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from api import openapi
from api.deps import SessionDep, SettingsDep, StorageDep, TenantDep
from api.lookup import load_owned
from api.problems import PROBLEM_RESPONSES, Problem
from api.schemas import BatchFromFile, BatchFromPrefix
from core import bounded_json, intake
from core.batches import (
    BatchLine,
    BatchRejected,
    batch_report,
    batch_results,
    batch_status,
    cancel_batch,
    decode_utf8,
    lines_from_prefix,
    lines_from_upload,
    parse_jsonl,
)
from core.config import Settings
from core.errors import ProblemKind
from core.report import report_html
from core.schema import Batch, BatchItem
from core.storage import Storage

router = APIRouter(prefix="/v1/batches", tags=["batches"], responses=PROBLEM_RESPONSES)
JSONL_TYPES = ("application/jsonl", "application/x-ndjson", "application/x-jsonlines", "text/plain")


@router.post(
    "",
    status_code=202,
    openapi_extra={"requestBody": openapi.batch_request()},
)
async def submit_batch(
    request: Request,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    tenant: TenantDep,
    webhook_url: Annotated[str | None, Query(max_length=2048, description="called with batch.completed")] = None,
) -> dict[str, Any]:
    """Create a batch. Invalid lines are reported by line number; the rest run. Duplicate custom_id: 422."""
    body = await request.body()  # bounded while it streams in (api.guard)
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    idempotency_key = request.headers.get("idempotency-key", "")[:255] or None
    # The database and storage work blocks: it runs in a worker thread, never on the event loop.
    return await run_in_threadpool(
        _create, body, content_type, idempotency_key, webhook_url, session, storage, settings, tenant
    )


def _create(
    body: bytes,
    content_type: str,
    idempotency_key: str | None,
    webhook_url: str | None,
    session: Session,
    storage: Storage,
    settings: Settings,
    tenant: str,
) -> dict[str, Any]:
    if content_type not in (*JSONL_TYPES, "application/json"):
        raise Problem(
            415, ProblemKind.UNSUPPORTED_MEDIA_TYPE, "Send application/jsonl or application/json", content_type
        )

    def read_lines() -> tuple[list[BatchLine], str]:
        if content_type in JSONL_TYPES:
            return parse_jsonl(decode_utf8(body)), "jsonl"
        return _lines_from_json(body, session, storage, settings, tenant)

    asked = intake.BatchRequest(tenant, read_lines, webhook_url)
    batch, _ = intake.submit_batch(session, storage, settings, asked, idempotency_key, body)
    status = batch_status(session, batch)
    status["errors"] = [
        {"line": i.line, "custom_id": i.custom_id, "error": i.error} for i in batch_items_with_errors(session, batch)
    ]
    return status


def _lines_from_json(
    body: bytes, session: Session, storage: Storage, settings: Settings, tenant: str
) -> tuple[list[BatchLine], str]:
    try:
        fields = bounded_json.loads(body or b"{}")
        if isinstance(fields, dict) and "input_file_id" in fields:
            by_file = BatchFromFile.model_validate(fields)
            return lines_from_upload(session, storage, tenant, by_file.input_file_id), f"upload:{by_file.input_file_id}"
        spec = BatchFromPrefix.model_validate(fields)
    except (ValueError, TypeError) as exc:
        raise BatchRejected(f"give input_prefix and task, or input_file_id, or send JSONL: {exc}") from exc
    lines = lines_from_prefix(session, storage, settings, tenant, spec.input_prefix, spec.task.value, spec.params)
    return lines, spec.input_prefix


def batch_items_with_errors(session: Session, batch: Batch) -> list[BatchItem]:
    return list(
        session.scalars(
            select(BatchItem)
            .where(BatchItem.batch_id == batch.id, BatchItem.error.is_not(None))
            .order_by(BatchItem.line)
        )
    )


@router.get("/{batch_id}")
def get_batch(batch_id: str, session: SessionDep, tenant: TenantDep) -> dict[str, Any]:
    """Counts per job state, media seconds done, progress."""
    return batch_status(session, load_owned(session, Batch, batch_id, tenant))


@router.get("/{batch_id}/results", responses={200: {"content": {"application/jsonl": {}}}})
def get_batch_results(batch_id: str, session: SessionDep, tenant: TenantDep) -> Response:
    """JSONL: custom_id with response (status_code, body) or error; order not guaranteed."""
    records = batch_results(session, load_owned(session, Batch, batch_id, tenant), "/v1/jobs/{job_id}/result")
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    return Response(body, media_type="application/jsonl")


@router.get("/{batch_id}/report", responses={200: {"content": {"text/html": {}}}})
def get_batch_report(
    batch_id: str,
    session: SessionDep,
    settings: SettingsDep,
    tenant: TenantDep,
    format: Annotated[str, Query(pattern="^(json|html)$")] = "json",
) -> Response:
    """What the batch did and what it cost: files and hours by outcome, failures by class, languages, speakers,
    wall time, engine seconds per hour of media, realtime factor, cost per hour of media (with
    OMNIMEDIA_ACCELERATOR_HOUR_COST). As JSON, or as a page with its charts (format=html)."""
    report = batch_report(session, load_owned(session, Batch, batch_id, tenant), settings.accelerator_hour_cost)
    if format == "html":
        return HTMLResponse(report_html(report))
    return JSONResponse(report)


@router.post("/{batch_id}/cancel")
def cancel(batch_id: str, session: SessionDep, tenant: TenantDep) -> dict[str, Any]:
    batch = load_owned(session, Batch, batch_id, tenant)
    cancel_batch(session, batch)
    return batch_status(session, batch)
