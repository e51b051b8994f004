"""Creating uploads, the one way for the API and the CLI alike: the tenant's size and storage limits are checked,
the bytes stream to storage in parts (never whole in memory), and an empty file is refused."""

from __future__ import annotations

from typing import BinaryIO

from sqlalchemy.orm import Session

from core.config import Settings
from core.errors import Refusal, Refused
from core.quotas import upload_limit
from core.schema import Upload, new_id
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
        id=upload_id, tenant=tenant, filename=filename[:512], content_type=content_type,
        storage_key=upload_key(tenant, upload_id), state=state.value,
    )  # fmt: skip


def store_upload(
    session: Session,
    storage: Storage,
    settings: Settings,
    tenant: str,
    filename: str,
    content_type: str | None,
    stream: BinaryIO,
    declared_bytes: int | None = None,
) -> Upload:
    """Stream a file into storage as a ready upload. `declared_bytes`: what the client announced (refused early
    when it is over the limit by more than the framing)."""
    limit, reason = upload_limit(session, settings, tenant)
    if declared_bytes is not None and declared_bytes > limit + FRAMING_SLACK_BYTES:
        raise _too_large(limit, reason)
    upload = _new_upload(tenant, filename, content_type, UploadState.READY)
    try:
        stored = storage.upload_stream(upload.storage_key, stream, limit, content_type)
    except TooLarge as exc:
        raise _too_large(exc.limit, reason) from exc
    if stored.size == 0:
        raise _empty()
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
    size_bytes: int | None,
) -> tuple[Upload, str]:
    """A pending upload and the presigned PUT URL for it; the client confirms once the PUT is done."""
    limit, reason = upload_limit(session, settings, tenant)
    if size_bytes and size_bytes > limit:
        raise _too_large(limit, reason)
    upload = _new_upload(tenant, filename, content_type, UploadState.PENDING)
    url = storage.presign_put(upload.storage_key, settings.presign_expiry_s, content_type)
    if url is None:
        raise UploadError(
            Refusal.PRESIGN_UNSUPPORTED, "use POST /v1/uploads", title="Presigned uploads need S3 storage"
        )
    session.add(upload)
    session.commit()
    return upload, url


def confirm_upload(session: Session, storage: Storage, settings: Settings, upload: Upload) -> Upload:
    """Check a presigned upload's object against the limits and mark it ready (again: a no-op)."""
    if upload.state == UploadState.READY.value:
        return upload
    size = storage.size(upload.storage_key)
    if size is None:
        raise UploadError(
            Refusal.UPLOAD_MISSING, "PUT the file to the presigned URL first", title="Nothing was uploaded yet"
        )
    limit, reason = upload_limit(session, settings, upload.tenant)
    if size > limit:
        raise _too_large(limit, reason)
    if size == 0:
        raise _empty()
    upload.size_bytes, upload.sha256 = size, storage.sha256(upload.storage_key)
    upload.state = UploadState.READY.value
    session.commit()
    return upload
