"""OpenAI-compatible chat: POST /v1/chat/completions with one image, audio or video part (image_url and video_url
as data: URLs, or http(s) URLs fetched through the SSRF guard; input_audio as base64), text and an optional system
prompt; `modalities: ["text", "audio"]` with `audio.voice` speaks the answer (24 kHz WAV in message.audio);
`stream: true` sends the text as server-sent events as the job finishes segments. Each call is a `custom` job.
GET /v1/models lists what is served."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from api.deps import SessionDep, SettingsDep, StorageDep, TenantDep
from api.openai_compat import Call, check_model, sampling, served_models, submit, succeeded, wait_final
from api.openai_errors import OPENAI_RESPONSES, openai_error
from api.problems import Problem
from core.config import Settings
from core.db import get_sessionmaker
from core.quotas import limits_for
from core.remote_media import fetch_media
from core.schema import Job, JobSegment
from core.states import JobState
from models.tasks import Voice

router = APIRouter(prefix="/v1", tags=["openai"], responses=OPENAI_RESPONSES)
AUDIO_FORMATS = {"wav", "mp3", "flac", "ogg", "m4a", "webm", "aac"}


class AudioOut(BaseModel):
    voice: str
    format: Literal["wav"] = "wav"


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # clients send many fields this service has no use for

    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)
    modalities: list[Literal["text", "audio"]] | None = None
    audio: AudioOut | None = None
    max_tokens: int | None = Field(None, ge=1, le=8192)
    max_completion_tokens: int | None = Field(None, ge=1, le=8192)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stream: bool = False


@router.get("/models")
def models(settings: SettingsDep) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "omnimedia"}
                                       for name in served_models(settings)]}  # fmt: skip


@router.post("/chat/completions", response_model=None)
async def chat_completions(
    body: ChatRequest,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    tenant: TenantDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> dict[str, Any] | StreamingResponse:
    check_model(settings, body.model)
    call = await run_in_threadpool(_call, body, session, settings, tenant)
    job = await run_in_threadpool(submit, session, storage, settings, tenant, call, idempotency_key)
    if body.stream:
        return StreamingResponse(_events(job.id, tenant, body.model, settings), media_type="text/event-stream",
                                 headers={"X-Omnimedia-Job": job.id, "Cache-Control": "no-cache"})  # fmt: skip
    job = await wait_final(job.id, tenant, settings.openai_wait_s)
    result = succeeded(job)
    message: dict[str, Any] = {"role": "assistant", "content": result.get("text", "")}
    if call.params.get("voice"):
        wav = await run_in_threadpool(storage.get_bytes, (job.outputs or {})["wav"])
        message["audio"] = {"id": f"audio_{job.id}", "data": base64.b64encode(wav).decode(),
                            "expires_at": int(time.time()) + 3600, "transcript": result.get("text", "")}  # fmt: skip
    return {
        "id": f"chatcmpl-{job.id}", "object": "chat.completion", "created": _created(job), "model": body.model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": _usage(result), "x_omnimedia": {"job_id": job.id, "warnings": result.get("warnings", [])},
    }  # fmt: skip


def _created(job: Job) -> int:
    return int(job.created_at.timestamp())


def _usage(result: dict[str, Any]) -> dict[str, int]:
    """Generated tokens are counted; prompt tokens are not (the model's processor expands the media inside the
    worker), so they read 0."""
    tokens = int(result.get("tokens") or 0)
    return {"prompt_tokens": 0, "completion_tokens": tokens, "total_tokens": tokens}


def _invalid(detail: str) -> Problem:
    return Problem(422, "invalid_request", "The request is not valid", detail)


def _call(body: ChatRequest, session: Any, settings: Settings, tenant: str) -> Call:
    """The job a conversation asks for: its one media part, the text of the turns as the prompt, the system
    messages as the system prompt."""
    system: list[str] = []
    turns: list[str] = []
    media: list[dict[str, Any]] = []
    for message in body.messages:
        role = message.get("role")
        texts, parts = _parts(message.get("content"))
        media += parts
        if role in ("system", "developer"):
            system += texts
        elif role in ("user", "assistant"):
            turns += [f"{role}: {text}" if len(body.messages) > 1 else text for text in texts]
        else:
            raise _invalid(f"unsupported message role {role!r}")
    if len(media) != 1:
        raise _invalid(f"give exactly one image_url, input_audio or video_url part (this one has {len(media)}): "
                       "each call runs on one media input")  # fmt: skip
    limit = limits_for(session, settings, tenant).max_upload_bytes
    data, filename = _media(media[0], settings, limit)
    params: dict[str, Any] = {"prompt": ("\n".join(turns) or "Describe this.")[:4000],
                              **sampling(body.temperature, body.top_p)}  # fmt: skip
    if system:
        params["system_prompt"] = "\n".join(system)[:4000]
    if body.max_completion_tokens or body.max_tokens:
        params["max_new_tokens"] = body.max_completion_tokens or body.max_tokens
    if body.modalities and "audio" in body.modalities:
        if body.audio is None:
            raise _invalid('modalities ["text", "audio"] need audio: {"voice": ..., "format": "wav"}')
        params["voice"] = Voice.parse(body.audio.voice).value
    return Call("custom", params, data, filename)


def _parts(content: Any) -> tuple[list[str], list[dict[str, Any]]]:
    if isinstance(content, str):
        return [content], []
    if not isinstance(content, list):
        raise _invalid("message content must be a string or a list of parts")
    texts, media = [], []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            texts.append(str(part.get("text", "")))
        elif kind in ("image_url", "input_audio", "video_url"):
            media.append(part)
        else:
            raise _invalid(f"unsupported content part {kind!r}")
    return texts, media


def _media(part: dict[str, Any], settings: Settings, limit: int) -> tuple[bytes, str]:
    kind = part["type"]
    if kind == "input_audio":
        audio = part.get("input_audio") or {}
        fmt = str(audio.get("format", "wav")).lower()
        if fmt not in AUDIO_FORMATS:
            raise _invalid(f"input_audio format {fmt!r} is not accepted ({', '.join(sorted(AUDIO_FORMATS))})")
        return _base64(str(audio.get("data", "")), limit), f"audio.{fmt}"
    url = str((part.get(kind) or {}).get("url", ""))
    stem = "image" if kind == "image_url" else "video"
    if url.startswith("data:"):
        header, _, payload = url.partition(",")
        if ";base64" not in header:
            raise _invalid("data URLs must be base64")
        return _base64(payload, limit), stem
    if url.startswith(("http://", "https://")):
        return fetch_media(url, settings, limit), stem
    raise _invalid(f"{kind} needs a data: URL or an http(s) URL")


def _base64(payload: str, limit: int) -> bytes:
    if len(payload) > limit * 4 // 3 + 4:
        raise Problem(413, "upload-too-large", "Media is too large", f"the limit is {limit} bytes")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _invalid("the media is not valid base64") from exc


async def _events(job_id: str, tenant: str, model: str, settings: Settings) -> AsyncIterator[bytes]:
    """Server-sent events: the text of each finished segment as it lands, then the finish, then [DONE]; an error
    event (OpenAI's shape) if the job fails or runs past the wait."""
    created, deadline = int(time.time()), time.monotonic() + settings.openai_wait_s
    following, spoke = 0, False  # the next segment index to send; whether any text went out yet
    yield _chunk(job_id, model, created, {"role": "assistant", "content": ""})
    while True:
        state, finished = await run_in_threadpool(_progress, job_id, following)
        for index, text in finished:
            following = index + 1
            if text:
                yield _chunk(job_id, model, created, {"content": (" " if spoke else "") + text})
                spoke = True
        if JobState(state).final:
            break
        if time.monotonic() > deadline:
            yield _error(504, "job_still_running", f"job {job_id} is still running; poll GET /v1/jobs/{job_id}")
            return
        await asyncio.sleep(0.2)
    job = await wait_final(job_id, tenant, 0)
    try:
        succeeded(job)
    except Problem as problem:
        yield _error(problem.status, problem.kind, problem.detail or problem.title)
        return
    yield _chunk(job_id, model, created, {}, finish="stop")
    yield b"data: [DONE]\n\n"


def _progress(job_id: str, following: int) -> tuple[str, list[tuple[int, str]]]:
    """The job's state, and (index, text) of its finished segments from index `following` on, in order. The state
    is read first: a segment that lands between the two reads is sent with the next poll, never skipped."""
    with get_sessionmaker()() as session:
        state = session.scalar(select(Job.state).where(Job.id == job_id)) or JobState.FAILED.value
        rows = session.execute(
            select(JobSegment.index, JobSegment.text)
            .where(JobSegment.job_id == job_id, JobSegment.index >= following)
            .order_by(JobSegment.index)
        ).all()
    return state, [(int(index), text or "") for index, text in rows]


def _chunk(job_id: str, model: str, created: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {"id": f"chatcmpl-{job_id}", "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
    return f"data: {json.dumps(body)}\n\n".encode()


def _error(status: int, kind: str, detail: str) -> bytes:
    _, body = openai_error(status, kind, detail, detail)
    return f"data: {json.dumps(body)}\n\n".encode()
