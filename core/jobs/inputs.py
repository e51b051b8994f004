"""A job's input as a local file: the file itself for local archive runs, else a copy fetched from storage (an
external bucket's object only while the tenant's grant still allows it)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from core.config import Settings
from core.grants import may_read
from core.schema import Job
from core.storage import Storage
from core.storage.keys import parse_s3_uri, upload_key
from models.errors import MediaError, TaskInputError

TEXT_ONLY = "text:"  # a job with no media (a text-only chat turn): its prompt is in its parameters


def local_input(
    job: Job, tmp: Path, sessions: sessionmaker[Session], settings: Settings, storage: Storage
) -> Path | None:
    """A local path to the job's input (downloads land in `tmp`); None for a text-only job."""
    if job.input_ref == TEXT_ONLY:
        return None
    if job.input_ref.startswith("file://"):
        path = Path(job.input_ref.removeprefix("file://"))
        if not path.is_file():
            raise MediaError(f"{path.name}: the source file is gone")
        return path
    dest = tmp / "input"
    if job.input_ref.startswith("s3://"):
        bucket, key = parse_s3_uri(job.input_ref)
        with sessions() as session:  # checked at submit; checked again in case a grant was revoked since
            if not may_read(session, settings, job.tenant, bucket, key):
                raise TaskInputError(f"{job.input_ref} is not readable by tenant {job.tenant}")
        storage.download(key, dest, bucket=bucket)
    else:
        storage.download(upload_key(job.tenant, job.input_ref.removeprefix("upload:")), dest)
    return dest
