"""Who spoke in a finished job's file, for the runner: the known voices (the request's named reference clips, then
the tenant's enrolled voices, whose embeddings a worker makes on first use and keeps) and the pipeline's one
clustering of every segment's speaker windows."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.jobs.work import Segment
from core.schema import Job, Speaker, Upload
from core.storage import Storage
from core.storage.keys import upload_key
from models.errors import MediaError
from models.pipeline import MediaPipeline, Prepared
from models.speakers import Speakers

log = logging.getLogger(__name__)


def speakers_of(
    pipeline: MediaPipeline,
    prepared: Prepared,
    segments: list[Segment],
    job: Job,
    sessions: sessionmaker[Session],
    storage: Storage,
    tmp: Path,
) -> Speakers | None:
    """The file's speakers when the job asked who spoke; None otherwise."""
    if not getattr(prepared.params, "diarize", False):
        return None
    known = _references(pipeline, prepared, job, storage, tmp) + enrolled_voices(
        pipeline, job.tenant, sessions, storage, tmp
    )
    return pipeline.speakers(prepared, [s.voices for s in segments if s.voices is not None], known)


def _references(
    pipeline: MediaPipeline, prepared: Prepared, job: Job, storage: Storage, tmp: Path
) -> list[tuple[str, np.ndarray]]:
    params = prepared.params
    found = []
    for index, (name, ref) in enumerate(zip(params.speaker_names, params.speaker_references, strict=True)):  # type: ignore[attr-defined]
        path = tmp / f"reference-{index}"
        storage.download(upload_key(job.tenant, ref.removeprefix("upload:")), path)
        vector = _voice(pipeline, path)
        if vector is not None:
            found.append((str(name), vector))
    return found


def enrolled_voices(
    pipeline: MediaPipeline, tenant: str, sessions: sessionmaker[Session], storage: Storage, tmp: Path
) -> list[tuple[str, np.ndarray]]:
    """The tenant's enrolled voices; an embedding not made yet is made now from its clip and kept."""
    found = []
    with sessions() as session:
        for speaker in session.scalars(select(Speaker).where(Speaker.tenant == tenant).order_by(Speaker.created_at)):
            if speaker.embedding is None and speaker.error is None:
                upload = session.get(Upload, speaker.upload_id)
                path = tmp / f"enrolled-{speaker.id}"
                if upload is None or upload.tenant != tenant:
                    speaker.error = "the clip's upload is gone"
                else:
                    storage.download(upload.storage_key, path)
                    vector = _voice(pipeline, path)
                    if vector is None:
                        speaker.error = "no speech was found in the clip"
                    else:
                        speaker.embedding = base64.b64encode(vector.astype(np.float32).tobytes()).decode()
                session.commit()
            if speaker.embedding:
                found.append((speaker.name, np.frombuffer(base64.b64decode(speaker.embedding), dtype=np.float32)))
    return found


def _voice(pipeline: MediaPipeline, path: Path) -> np.ndarray | None:
    try:
        return pipeline.voice_of(path)
    except MediaError as exc:
        log.info("a speaker clip could not be used: %s", exc.reason)
        return None
