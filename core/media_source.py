"""A job's input as the review page plays it: where its bytes are (an upload, a granted bucket's object, or a
local archive's file), how long it is, and the media type it is served as: a type from an allowlist by its file
name (never the caller's claim, never anything a browser would run), else octet-stream."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sqlalchemy.orm import Session

from core.config import Settings
from core.grants import may_read
from core.schema import Job, Upload
from core.storage import ObjectNotFound, Storage
from core.storage.keys import parse_s3_uri, upload_key

MEDIA_TYPES = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
}
CHUNK_BYTES = 2 * 1024 * 1024  # the most one ranged answer carries


@dataclass(frozen=True)
class MediaSource:
    name: str
    size: int
    media_type: str
    key: str | None = None
    bucket: str | None = None
    path: Path | None = None

    def read(self, storage: Storage, start: int, end: int) -> bytes:
        """Bytes start..end (inclusive)."""
        if self.path is not None:
            with self.path.open("rb") as source:
                source.seek(start)
                return source.read(end - start + 1)
        assert self.key is not None
        return storage.read_range(self.key, start, end, bucket=self.bucket)

    def chunks(self, storage: Storage) -> Iterator[bytes]:
        """The whole object, CHUNK_BYTES at a time (a streamed answer never holds it whole)."""
        for start in range(0, self.size, CHUNK_BYTES):
            yield self.read(storage, start, min(start + CHUNK_BYTES, self.size) - 1)


def media_type(name: str) -> str:
    return MEDIA_TYPES.get(PurePosixPath(name).suffix.lower(), "application/octet-stream")


def source_of(session: Session, settings: Settings, storage: Storage, job: Job) -> MediaSource | None:
    """The job's input, or None where it is gone (or no longer readable by the job's tenant)."""
    ref = job.input_ref
    if ref.startswith("file://"):
        path = Path(ref.removeprefix("file://"))
        return MediaSource(path.name, path.stat().st_size, media_type(path.name), path=path) if path.is_file() else None
    if ref.startswith("s3://"):
        bucket, key = parse_s3_uri(ref)
        if not may_read(session, settings, job.tenant, bucket, key):
            return None
        size = storage.size(key, bucket=bucket)
        return None if size is None else MediaSource(key.rsplit("/", 1)[-1], size, media_type(key), key, bucket)
    upload = session.get(Upload, ref.removeprefix("upload:"))
    if upload is None or upload.tenant != job.tenant:
        return None
    key = upload_key(job.tenant, upload.id)
    try:
        size = storage.size(key)
    except ObjectNotFound:
        return None
    return None if size is None else MediaSource(upload.filename, size, media_type(upload.filename), key)


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The first range of a Range header, clipped to CHUNK_BYTES; None: no (usable) range asked, answer 200.
    Raises ValueError for a range outside the object (416)."""
    if not header or not header.startswith("bytes=") or size == 0:
        return None
    first = header.removeprefix("bytes=").split(",")[0].strip()
    lo, _, hi = first.partition("-")
    if not lo:  # the last N bytes
        start = max(0, size - int(hi))
        end = size - 1
    else:
        start, end = int(lo), (int(hi) if hi else size - 1)
    if start >= size or end < start:
        raise ValueError(f"bytes {first} of {size}")
    return start, min(end, size - 1, start + CHUNK_BYTES - 1)
