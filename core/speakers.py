"""A tenant's enrolled voices: a name and a clip of the voice, kept so every later diarized job and archive run
labels that voice by name. The clip must be one of the tenant's ready uploads; its embedding is made by a worker
the first time a job needs it (core.jobs.speakers), so the API never loads a model."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.config import Settings
from core.errors import Refusal, Refused
from core.jobs.rows import resolve_input
from core.schema import Speaker, new_id, utcnow
from core.storage import Storage

MAX_VOICES_PER_TENANT = 200


class SpeakerError(Refused):
    title = "Voice cannot be enrolled"


def enrol_voice(session: Session, storage: Storage, settings: Settings, tenant: str, name: str, clip: str) -> Speaker:
    """Enrol a voice (409 when the tenant already has one of that name, or has too many)."""
    _, upload = resolve_input(session, storage, settings, clip, tenant)
    if upload is None:
        raise SpeakerError(Refusal.INVALID_INPUT, "a voice's clip must be an upload id (POST /v1/uploads)")
    count = len(session.scalars(select(Speaker.id).where(Speaker.tenant == tenant)).all())
    if count >= MAX_VOICES_PER_TENANT:
        raise SpeakerError(Refusal.TOO_MANY_VOICES, f"a tenant enrols at most {MAX_VOICES_PER_TENANT} voices")
    speaker = Speaker(id=new_id(), tenant=tenant, name=name, upload_id=upload.id, created_at=utcnow())
    session.add(speaker)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise SpeakerError(
            Refusal.VOICE_EXISTS, f"a voice named {name!r} is already enrolled; delete it first"
        ) from exc
    return speaker


def voices(session: Session, tenant: str) -> list[Speaker]:
    return list(session.scalars(select(Speaker).where(Speaker.tenant == tenant).order_by(Speaker.created_at)))
