"""Uploads: multipart (streamed to storage in parts) or presigned PUT then confirm."""

from __future__ import annotations

from fastapi import APIRouter, Request, UploadFile

from api.deps import SessionDep, SettingsDep, StorageDep, TenantDep
from api.problems import PROBLEM_RESPONSES, Problem
from api.routes.jobs import submit_problem
from api.schemas import PresignIn, PresignOut, UploadOut
from core.quotas import QuotaExceeded, upload_limit
from core.schema import Upload
from core.storage import TooLarge
from core.submit import new_upload

router = APIRouter(prefix="/v1/uploads", tags=["uploads"], responses=PROBLEM_RESPONSES)


def _too_large(limit: int, reason: str) -> Problem:
    return Problem(413, "upload-too-large", "Upload is too large", reason, limit_bytes=limit)


def _limit(session: SessionDep, settings: SettingsDep, tenant: str) -> tuple[int, str]:
    try:
        return upload_limit(session, settings, tenant)
    except QuotaExceeded as exc:
        raise submit_problem(exc) from exc


@router.post("", status_code=201, response_model=UploadOut)
def create_upload(
    file: UploadFile,
    request: Request,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    tenant: TenantDep,
) -> UploadOut:
    """Upload one media file (multipart/form-data, field `file`)."""
    limit, reason = _limit(session, settings, tenant)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise _too_large(limit, reason)
    upload = new_upload(session, file.filename or "upload", file.content_type, tenant=tenant)
    try:
        stored = storage.upload_stream(upload.storage_key, file.file, limit, file.content_type)
    except TooLarge as exc:
        session.rollback()
        raise _too_large(exc.limit, reason) from exc
    if stored.size == 0:
        session.rollback()
        raise Problem(422, "empty-upload", "Upload is empty", "the file has 0 bytes")
    upload.size_bytes, upload.sha256 = stored.size, stored.sha256
    session.commit()
    return UploadOut.model_validate(upload)


@router.post("/presign", status_code=201, response_model=PresignOut)
def presign_upload(
    body: PresignIn, session: SessionDep, storage: StorageDep, settings: SettingsDep, tenant: TenantDep
) -> PresignOut:
    """A presigned PUT URL for large files; call POST /v1/uploads/{id}/confirm once the PUT is done."""
    limit, reason = _limit(session, settings, tenant)
    if body.size_bytes and body.size_bytes > limit:
        raise _too_large(limit, reason)
    upload = new_upload(session, body.filename, body.content_type, state="pending", tenant=tenant)
    url = storage.presign_put(upload.storage_key, settings.presign_expiry_s, body.content_type)
    if url is None:
        session.rollback()
        raise Problem(409, "presign-unsupported", "Presigned uploads need S3 storage", "use POST /v1/uploads")
    session.commit()
    headers = {"Content-Type": body.content_type} if body.content_type else {}
    return PresignOut(
        upload=UploadOut.model_validate(upload), url=url, headers=headers, expires_in=settings.presign_expiry_s
    )


@router.post("/{upload_id}/confirm", response_model=UploadOut)
def confirm_upload(
    upload_id: str, session: SessionDep, storage: StorageDep, settings: SettingsDep, tenant: TenantDep
) -> UploadOut:
    upload = _load(session, upload_id, tenant)
    if upload.state == "ready":
        return UploadOut.model_validate(upload)
    size = storage.size(upload.storage_key)
    if size is None:
        raise Problem(409, "upload-missing", "Nothing was uploaded yet", "PUT the file to the presigned URL first")
    limit, reason = _limit(session, settings, tenant)
    if size > limit:
        raise _too_large(limit, reason)
    if size == 0:
        raise Problem(422, "empty-upload", "Upload is empty", "the file has 0 bytes")
    upload.size_bytes, upload.sha256, upload.state = size, storage.sha256(upload.storage_key), "ready"
    session.commit()
    return UploadOut.model_validate(upload)


@router.get("/{upload_id}", response_model=UploadOut)
def get_upload(upload_id: str, session: SessionDep, tenant: TenantDep) -> UploadOut:
    return UploadOut.model_validate(_load(session, upload_id, tenant))


def _load(session: SessionDep, upload_id: str, tenant: str) -> Upload:
    upload = session.get(Upload, upload_id) if upload_id.isalnum() else None
    if upload is None or upload.tenant != tenant:
        raise Problem(404, "upload-not-found", "Upload not found", f"no upload with id {upload_id!r}")
    return upload
