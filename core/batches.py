"""Batches: many jobs from JSONL in the OpenAI Batch format (or the short form), or from an S3 prefix.

Lines that fail validation are reported by line number while the rest proceed; a duplicate custom_id
rejects the whole batch. Results come back as JSONL matched by custom_id."""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from core import bounded_json
from core.config import Settings
from core.errors import Refusal, Refused
from core.grants import may_read
from core.jobs import machine
from core.jobs.finished import batch_state
from core.jobs.rows import InputError, JobRequest, add_jobs, validated_job
from core.owned import get_owned
from core.report import ReportLine, build_report
from core.schema import LOCAL_TENANT, Batch, BatchItem, Job, Upload, as_utc, new_id, utcnow
from core.states import FINAL_JOB_STATES, JobState
from core.storage import ObjectNotFound, Storage, StorageError
from core.storage.keys import parse_s3_prefix
from models.errors import TaskInputError
from models.tasks import parse_params

MAX_LINES = 50_000
MAX_BATCH_BYTES = 100 * 1024 * 1024  # a JSONL body, or a JSONL file named by input_file_id
MAX_ERRORS_SHOWN = 100


class BatchRejected(Refused):
    """The batch as a whole is invalid (duplicate custom_id, no valid line, too many lines)."""

    title = "Batch is not valid"

    def __init__(self, reason: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(Refusal.INVALID_BATCH, reason, errors=(errors or [])[:MAX_ERRORS_SHOWN])
        self.errors = errors or []


@dataclass
class BatchLine:
    line: int
    custom_id: str
    task: str | None = None
    input: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def decode_utf8(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BatchRejected("the batch body must be UTF-8") from exc


def parse_jsonl(text: str) -> list[BatchLine]:
    """Parse and shape-check each line; problems are kept per line, not raised. The line limit is enforced while
    reading: parsing stops at the first line past it."""
    lines: list[BatchLine] = []
    for number, raw in enumerate(io.StringIO(text), start=1):
        if not raw.strip():
            continue
        if len(lines) == MAX_LINES:
            raise BatchRejected(f"a batch holds at most {MAX_LINES} lines; line {number} is one more")
        lines.append(_parse_line(number, raw))
    counts = Counter(item.custom_id for item in lines if item.custom_id)
    duplicates = sorted(cid for cid, count in counts.items() if count > 1)
    if duplicates:
        raise BatchRejected(f"duplicate custom_id in batch: {', '.join(duplicates[:10])}")
    return lines


def _parse_line(number: int, raw: str) -> BatchLine:
    try:
        obj = bounded_json.loads(raw)
    except bounded_json.InvalidJSON as exc:
        return BatchLine(number, f"line-{number}", error=f"line {number}: {exc}")
    if not isinstance(obj, dict):
        return BatchLine(number, f"line-{number}", error=f"line {number}: expected a JSON object")
    custom_id = obj.get("custom_id")
    if not isinstance(custom_id, str) or not 0 < len(custom_id) <= 256:
        return BatchLine(number, f"line-{number}", error=f"line {number}: custom_id must be a string of 1-256 chars")
    body: Any = obj
    if "body" in obj or "url" in obj:  # OpenAI Batch format
        if obj.get("method", "POST") != "POST" or obj.get("url") not in ("/v1/jobs", "v1/jobs"):
            return BatchLine(number, custom_id, error=f"line {number}: only POST /v1/jobs is supported")
        body = obj.get("body")
        if not isinstance(body, dict):
            return BatchLine(number, custom_id, error=f"line {number}: body must be an object")
    task, media, params = body.get("task"), body.get("input"), body.get("params", {})
    if not isinstance(task, str) or not isinstance(media, str) or not isinstance(params, dict):
        return BatchLine(number, custom_id, error=f"line {number}: task and input must be strings, params an object")
    return BatchLine(number, custom_id, task, media, params)


def lines_from_prefix(
    session: Session,
    storage: Storage,
    settings: Settings,
    tenant: str,
    prefix_uri: str,
    task: str,
    params: dict[str, Any],
) -> list[BatchLine]:
    """One line per object under s3://bucket/prefix, all with the same task and parameters. A prefix the tenant
    may not name is answered like an empty one that does not exist."""
    try:
        parse_params(task, params)
        bucket, prefix = parse_s3_prefix(prefix_uri)
        if settings.storage_backend == "local" or not may_read(session, settings, tenant, bucket, prefix):
            raise InputError(Refusal.INPUT_NOT_FOUND, f"nothing under {prefix_uri}", title="Input cannot be used")
        keys = sorted(storage.list(prefix, bucket=bucket))[: MAX_LINES + 1]
    except TaskInputError as exc:
        raise BatchRejected(exc.reason) from exc
    except (ValueError, ObjectNotFound, StorageError) as exc:
        raise BatchRejected(f"cannot list {prefix_uri}: {exc}") from exc
    if not keys:
        raise InputError(Refusal.INPUT_NOT_FOUND, f"nothing under {prefix_uri}", title="Input cannot be used")
    if len(keys) > MAX_LINES:
        raise BatchRejected(f"more than {MAX_LINES} objects under {prefix_uri}")
    return [BatchLine(n, key, task, f"s3://{bucket}/{key}", params) for n, key in enumerate(keys, start=1)]


def lines_from_upload(session: Session, storage: Storage, tenant: str, upload_id: str) -> list[BatchLine]:
    """The lines of a JSONL file uploaded earlier by the same tenant."""
    upload = get_owned(session, Upload, upload_id, tenant)
    if upload is None:
        raise InputError(Refusal.INPUT_NOT_FOUND, upload_id, title="Upload not found")
    if (upload.size_bytes or 0) > MAX_BATCH_BYTES:
        raise BatchRejected(f"a batch file holds at most {MAX_BATCH_BYTES} bytes; this one has {upload.size_bytes}")
    return parse_jsonl(decode_utf8(storage.get_bytes(upload.storage_key)))


def create_batch(
    session: Session,
    storage: Storage,
    settings: Settings,
    lines: list[BatchLine],
    source: str,
    tenant: str = LOCAL_TENANT,
    webhook_url: str | None = None,
) -> tuple[Batch, list[Job]]:
    """Validate every line as a job; add the valid jobs and the batch to the caller's transaction, to be committed
    at once (a rejected batch is rolled back here). Does not enqueue."""
    batch = Batch(id=new_id(), tenant=tenant, source=source, created_at=utcnow(), webhook_url=webhook_url)
    created: list[Job] = []
    items: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for item in lines:
        error = item.error
        job_id = None
        if error is None:
            try:
                asked = JobRequest(tenant, item.task or "", item.input or "", item.params or {})
                job = validated_job(session, storage, settings, asked)
                created.append(job)
                job_id = job.id
            except (TaskInputError, InputError) as exc:
                error = f"line {item.line}: {exc.reason}"
        if error:
            errors.append({"line": item.line, "custom_id": item.custom_id, "error": error})
        items.append(
            {"batch_id": batch.id, "custom_id": item.custom_id, "line": item.line, "job_id": job_id, "error": error}
        )
    if not created:
        session.rollback()
        raise BatchRejected("no line of the batch is valid", errors)
    batch.total, batch.invalid = len(lines), len(errors)
    session.add(batch)
    session.flush()
    add_jobs(session, created)  # one statement for all the jobs, then one for all the items that name them
    session.execute(insert(BatchItem), items)
    return batch, created


def queued_jobs(session: Session, batch_id: str) -> list[Job]:
    """The batch's jobs still waiting for a worker (to publish after the batch commits)."""
    waiting = Job.state == JobState.QUEUED
    return list(
        session.scalars(
            select(Job).join(BatchItem, BatchItem.job_id == Job.id).where(BatchItem.batch_id == batch_id, waiting)
        )
    )


def batch_status(session: Session, batch: Batch) -> dict[str, Any]:
    rows = session.execute(
        select(Job.state, func.count(), func.coalesce(func.sum(Job.media_seconds), 0.0))
        .join(BatchItem, BatchItem.job_id == Job.id)
        .where(BatchItem.batch_id == batch.id)
        .group_by(Job.state)
    ).all()
    counts = {state.value: 0 for state in JobState}
    media_done = 0.0
    for job_state, count, media in rows:
        counts[job_state] = count
        if job_state == JobState.SUCCEEDED:
            media_done = float(media or 0.0)
    jobs_total = sum(counts.values())
    finished = sum(counts[s] for s in FINAL_JOB_STATES)
    # A read: it never writes. The last job's transaction completes the batch (the reconciler backs it up).
    state = batch_state(batch, [s for s, n in counts.items() if n])
    return {
        "id": batch.id,
        "state": state,
        "source": batch.source,
        "total_lines": batch.total,
        "invalid_lines": batch.invalid,
        "jobs": jobs_total,
        "counts": counts,
        "progress": round(finished / jobs_total, 4) if jobs_total else 1.0,
        "media_seconds_done": round(media_done, 3),
        "created_at": as_utc(batch.created_at).isoformat(),
        "completed_at": as_utc(batch.completed_at).isoformat() if batch.completed_at else None,
    }


def batch_results(session: Session, batch: Batch, result_url: str) -> list[dict[str, Any]]:
    """One JSONL record per finished or rejected line, matched by custom_id (order not guaranteed)."""
    records = []
    rows = session.execute(
        select(BatchItem, Job).outerjoin(Job, BatchItem.job_id == Job.id).where(BatchItem.batch_id == batch.id)
    ).all()
    for item, job in rows:
        record: dict[str, Any] = {"id": f"{batch.id}-{item.line}", "custom_id": item.custom_id}
        if job is None:
            record["response"] = None
            record["error"] = {"code": "invalid_line", "message": item.error, "line": item.line}
        elif not job.state.final:
            continue
        elif job.state == JobState.SUCCEEDED:
            body = {
                "job_id": job.id,
                "state": job.state,
                "result": job.result,
                "result_url": result_url.format(job_id=job.id),
            }
            record["response"] = {"status_code": 200, "body": body}
            record["error"] = None
        else:
            record["response"] = None
            record["error"] = {
                "code": job.failure_class or job.state,
                "message": job.failure_reason or job.state,
                "job_id": job.id,
            }
        records.append(record)
    return records


def cancel_batch(session: Session, batch: Batch) -> int:
    batch.cancel_requested = True
    session.commit()
    job_ids = session.scalars(
        select(BatchItem.job_id).where(BatchItem.batch_id == batch.id, BatchItem.job_id.is_not(None))
    )
    canceled = 0
    for job_id in list(job_ids):
        if job_id and machine.request_cancel(session, job_id) is JobState.CANCELED:
            canceled += 1
    return canceled


def batch_report(session: Session, batch: Batch, hour_cost: float | None) -> dict[str, Any]:
    """What the batch did and cost (core.report): one line per line of the batch, rejected lines included."""
    rows = session.execute(
        select(BatchItem, Job).outerjoin(Job, BatchItem.job_id == Job.id).where(BatchItem.batch_id == batch.id)
    ).all()
    lines = []
    for item, job in sorted(rows, key=lambda row: row[0].line):
        if job is None:
            lines.append(ReportLine(item.custom_id, "rejected", failure_class="invalid_line", reason=item.error))
            continue
        result = job.result or {}
        lines.append(
            ReportLine(
                item.custom_id,
                str(job.state),
                job.media_seconds or 0.0,
                job.engine_seconds or 0.0,
                job.failure_class,
                job.failure_reason,
                result.get("language"),
                len(result.get("speakers") or []),
                result.get("quality"),
            )
        )
    ended = batch.completed_at or utcnow()
    wall_s = (as_utc(ended) - as_utc(batch.created_at)).total_seconds()
    return build_report(f"Batch {batch.id}", lines, wall_s, hour_cost)
