"""Enrolled voices: a tenant names a voice once (a short clip of it, uploaded first) and every later diarized job
and archive run labels that voice by name."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import SessionDep, SettingsDep, StorageDep, TenantDep
from api.lookup import load_owned
from api.problems import PROBLEM_RESPONSES
from api.schemas import Timestamp
from core import speakers
from core.schema import Speaker

router = APIRouter(prefix="/v1/speakers", tags=["speakers"], responses=PROBLEM_RESPONSES)


class VoiceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f<>{}\\]+$")]
    input: Annotated[
        str, Field(pattern=r"^(upload:)?[0-9a-f]{32}$", description="the upload id of a clip of the voice")
    ]


class VoiceOut(BaseModel):
    id: str
    name: str
    upload_id: str
    state: Literal["pending", "ready", "failed"] = Field(description="pending until a job first needs it")
    error: str | None
    created_at: Timestamp

    @classmethod
    def of(cls, row: Speaker) -> VoiceOut:
        state: Literal["pending", "ready", "failed"] = (
            "ready" if row.embedding else "failed" if row.error else "pending"
        )
        return cls(
            id=row.id, name=row.name, upload_id=row.upload_id, state=state, error=row.error, created_at=row.created_at
        )


@router.post("", status_code=201, response_model=VoiceOut)
def enrol(
    body: VoiceIn, session: SessionDep, storage: StorageDep, settings: SettingsDep, tenant: TenantDep
) -> VoiceOut:
    """Enrol a voice under a name; later diarized jobs label a speaker who sounds like it by that name."""
    return VoiceOut.of(speakers.enrol_voice(session, storage, settings, tenant, body.name, body.input))


@router.get("", response_model=list[VoiceOut])
def list_voices(session: SessionDep, tenant: TenantDep) -> list[VoiceOut]:
    return [VoiceOut.of(row) for row in speakers.voices(session, tenant)]


@router.delete("/{speaker_id}", status_code=204, response_class=Response)
def delete_voice(speaker_id: str, session: SessionDep, tenant: TenantDep) -> Response:
    session.delete(load_owned(session, Speaker, speaker_id, tenant))
    session.commit()
    return Response(status_code=204)
