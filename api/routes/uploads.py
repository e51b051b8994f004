"""Uploads: multipart (streamed to storage in parts) or presigned PUT then confirm."""

from __future__ import annotations

from fastapi import APIRouter, Request, UploadFile

from api import openapi
from api.deps import SessionDep, SettingsDep, StorageDep, TenantDep
from api.lookup import load_owned
from api.problems import PROBLEM_RESPONSES
from api.schemas import PresignIn, PresignOut, UploadOut
from core import uploads
from core.schema import Upload

router = APIRouter(prefix="/v1/uploads", tags=["uploads"], responses=PROBLEM_RESPONSES)


@router.post("", status_code=201, response_model=UploadOut, openapi_extra={"requestBody": openapi.upload_request()})
def create_upload(
    file: UploadFile,
    request: Request,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    tenant: TenantDep,
) -> UploadOut:
    """Upload one media file (multipart/form-data, field `file`)."""
    declared = request.headers.get("content-length")
    upload = uploads.store_upload(
        session,
        storage,
        settings,
        tenant,
        file.filename or "upload",
        file.content_type,
        file.file,
        int(declared) if declared and declared.isdigit() else None,
    )
    return UploadOut.model_validate(upload)


@router.post("/presign", status_code=201, response_model=PresignOut)
def presign_upload(
    body: PresignIn, session: SessionDep, storage: StorageDep, settings: SettingsDep, tenant: TenantDep
) -> PresignOut:
    """A presigned PUT URL for large files; call POST /v1/uploads/{id}/confirm once the PUT is done."""
    upload, url = uploads.presign_upload(
        session, storage, settings, tenant, body.filename, body.content_type, body.size_bytes
    )
    headers = {"Content-Type": body.content_type} if body.content_type else {}
    return PresignOut(
        upload=UploadOut.model_validate(upload), url=url, headers=headers, expires_in=settings.presign_expiry_s
    )


@router.post("/{upload_id}/confirm", response_model=UploadOut)
def confirm_upload(
    upload_id: str, session: SessionDep, storage: StorageDep, settings: SettingsDep, tenant: TenantDep
) -> UploadOut:
    upload = load_owned(session, Upload, upload_id, tenant)
    return UploadOut.model_validate(uploads.confirm_upload(session, storage, settings, upload))


@router.get("/{upload_id}", response_model=UploadOut)
def get_upload(upload_id: str, session: SessionDep, tenant: TenantDep) -> UploadOut:
    return UploadOut.model_validate(load_owned(session, Upload, upload_id, tenant))
