"""Creating uploads, the one way for the API and the CLI alike: the tenant's size and storage limits are checked,
the bytes stream to storage in parts (never whole in memory), an empty file is refused, and a refused file is
deleted from storage. Presigned uploads reserve their declared size until confirmed; the store accepts exactly
that size."""

from __future__ import annotations

from datetime import timedelta
from typing import IO

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.config import Settings
from core.errors import Refusal, Refused
from core.quotas import reserve_storage, upload_limit
from core.schema import Upload, new_id, utcnow
from core.states import UploadState
from core.storage import Storage, TooLarge
from core.storage.keys import upload_key

FRAMING_SLACK_BYTES = 64 * 1024  # a multipart body is larger than its file by its boundaries and headers


class UploadError(Refused):
    title = "Upload refused"


def _too_large(limit: int, reason: str) -> UploadError:
    return UploadError(Refusal.UPLOAD_TOO_LARGE, reason, title="Upload is too large", limit_bytes=limit)


def _empty() -> UploadError:
    return UploadError(Refusal.EMPTY_UPLOAD, "the file has 0 bytes", title="Upload is empty")


def _new_upload(tenant: str, filename: str, content_type: str | None, state: UploadState) -> Upload:
    upload_id = new_id()
    return Upload(
        id=upload_id,
        tenant=tenant,
        filename=filename[:512],
        content_type=content_type,
        storage_key=upload_key(tenant, upload_id),
        state=state.value,
        created_at=utcnow(),
    )


def store_upload(
    session: Session,
    storage: Storage,
    settings: Settings,
    tenant: str,
    filename: str,
    content_type: str | None,
    stream: IO[bytes],
    declared_bytes: int | None = None,
) -> Upload:
    """Stream a file into storage as a ready upload. `declared_bytes`: what the client announced (refused early
    when it is over the limit by more than the framing)."""
    limit, reason = upload_limit(session, settings, tenant)
    session.rollback()  # hold no transaction (or tenant lock) while the bytes stream in
    if declared_bytes is not None and declared_bytes > limit + FRAMING_SLACK_BYTES:
        raise _too_large(limit, reason)
    upload = _new_upload(tenant, filename, content_type, UploadState.READY)
    try:
        stored = storage.upload_stream(upload.storage_key, stream, limit, content_type)
    except TooLarge as exc:
        raise _too_large(exc.limit, reason) from exc
    try:
        if stored.size == 0:
            raise _empty()
        reserve_storage(session, settings, tenant, stored.size)  # others may have stored bytes meanwhile
    except Refused:
        session.rollback()
        storage.delete(upload.storage_key)
        raise
    upload.size_bytes, upload.sha256 = stored.size, stored.sha256
    session.add(upload)
    session.commit()
    return upload


def presign_upload(
    session: Session,
    storage: Storage,
    settings: Settings,
    tenant: str,
    filename: str,
    content_type: str | None,
    size_bytes: int,
) -> tuple[Upload, str]:
    """A pending upload holding `size_bytes` of the tenant's quota, and the presigned PUT URL for exactly that
    size; the client confirms once the PUT is done."""
    limit, reason = upload_limit(session, settings, tenant)
    if size_bytes > limit:
        raise _too_large(limit, reason)
    upload = _new_upload(tenant, filename, content_type, UploadState.PENDING)
    url = storage.presign_put(upload.storage_key, settings.presign_expiry_s, size_bytes, content_type)
    if url is None:
        raise UploadError(
            Refusal.PRESIGN_UNSUPPORTED, "use POST /v1/uploads", title="Presigned uploads need S3 storage"
        )
    reserve_storage(session, settings, tenant, size_bytes)
    upload.size_bytes = size_bytes  # reserved until confirmed (or abandoned and purged)
    session.add(upload)
    session.commit()
    return upload, url


def confirm_upload(session: Session, storage: Storage, settings: Settings, upload: Upload) -> Upload:
    """Check a presigned upload's object and mark it ready (again: a no-op). A refused object is deleted, and
    so is its upload."""
    if upload.state == UploadState.READY:
        return upload
    size = storage.size(upload.storage_key)
    if size is None:
        raise UploadError(
            Refusal.UPLOAD_MISSING, "PUT the file to the presigned URL first", title="Nothing was uploaded yet"
        )
    if size == 0 or size != upload.size_bytes:  # the signed length makes a mismatch unlikely; refuse it anyway
        storage.delete(upload.storage_key)
        session.delete(upload)
        session.commit()
        if size == 0:
            raise _empty()
        raise _too_large(upload.size_bytes or 0, f"the upload declared {upload.size_bytes} bytes but has {size}")
    upload.sha256 = storage.sha256(upload.storage_key)
    upload.state = UploadState.READY
    session.commit()
    return upload


def purge_abandoned(session: Session, storage: Storage, settings: Settings) -> int:
    """Presigned uploads never confirmed long after their URL expired: free their reservation and any object."""
    cutoff = utcnow() - timedelta(seconds=2 * settings.presign_expiry_s + 3600)
    stale = session.scalars(
        select(Upload).where(Upload.state == UploadState.PENDING, Upload.created_at < cutoff).limit(500)
    ).all()
    for upload in stale:
        storage.delete(upload.storage_key)
        session.delete(upload)
    session.commit()
    return len(stale)
