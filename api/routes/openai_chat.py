"""OpenAI-compatible chat: POST /v1/chat/completions with one image, audio or video part (image_url and video_url
as data: URLs, or http(s) URLs fetched through the SSRF guard; input_audio as base64), text and an optional system
prompt; `modalities: ["text", "audio"]` with `audio.voice` speaks the answer (24 kHz WAV in message.audio);
`stream: true` sends the text as server-sent events as the job finishes segments. Each call is a `custom` job.
GET /v1/models lists what is served."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from typing import IO, Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from api import openapi
from api.deps import SettingsDep, StorageDep, TenantDep, with_session
from api.openai_chat_body import ChatRequest, MediaPart, TextPart, decode_base64, decode_data_url, invalid, read_chat
from api.openai_compat import Call, check_model, public_model_ids, sampling, submit, succeeded, wait_final
from api.openai_errors import OPENAI_RESPONSES, openai_error
from api.problems import Problem
from core.config import Settings
from core.db import get_sessionmaker
from core.remote_media import fetch_media
from core.schema import Job, JobSegment
from core.states import JobState
from models.tasks import Voice

router = APIRouter(prefix="/v1", tags=["openai"], responses=OPENAI_RESPONSES)


@router.get("/models")
def models(settings: SettingsDep) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "omnimedia"}
            for name in public_model_ids(settings)
        ],
    }


@router.post("/chat/completions", response_model=None, openapi_extra={"requestBody": openapi.chat_request()})
async def chat_completions(
    request: Request,
    storage: StorageDep,
    settings: SettingsDep,
    tenant: TenantDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> dict[str, Any] | StreamingResponse:
    """One image, audio or video part (data: URL, public http(s) URL or base64 audio) with text; no database
    session and no thread is held while the media arrives."""
    body = await read_chat(request)
    check_model(settings, body.model)
    params, part = _call(body, settings)
    media, filename = await _media(part, settings, tenant) if part is not None else (None, "")
    try:
        job = await with_session(
            submit, storage, settings, tenant, Call("custom", params, media, filename), idempotency_key
        )
    finally:
        if media is not None:
            media.close()
    if body.stream:
        return StreamingResponse(
            _events(job.id, tenant, body.model, settings),
            media_type="text/event-stream",
            headers={"X-Omnimedia-Job": job.id, "Cache-Control": "no-cache"},
        )
    job = await wait_final(job.id, tenant, settings.openai_wait_s)
    result = succeeded(job)
    message: dict[str, Any] = {"role": "assistant", "content": result.get("text", "")}
    if params.get("voice"):
        wav = await run_in_threadpool(storage.get_bytes, (job.outputs or {})["wav"])
        message["audio"] = {
            "id": f"audio_{job.id}",
            "data": base64.b64encode(wav).decode(),
            "expires_at": int(time.time()) + 3600,
            "transcript": result.get("text", ""),
        }
    return {
        "id": f"chatcmpl-{job.id}",
        "object": "chat.completion",
        "created": _created(job),
        "model": body.model,
        "choices": [{"index": 0, "message": message, "finish_reason": result.get("finish") or "stop"}],
        "usage": usage(result),
        "x_omnimedia": {"job_id": job.id, "warnings": result.get("warnings", [])},
    }


def _created(job: Job) -> int:
    return int(job.created_at.timestamp())


def usage(result: dict[str, Any]) -> dict[str, int]:
    """Tokens as the model counted them: the prompt with its media expanded, and the answer."""
    prompt, completion = int(result.get("prompt_tokens") or 0), int(result.get("tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _call(body: ChatRequest, settings: Settings) -> tuple[dict[str, Any], MediaPart | None]:
    """The job a conversation asks for: its one media part, the text of the turns as the prompt, the system
    messages as the system prompt. Everything that can be refused is refused here, before any media is read."""
    system: list[str] = []
    turns: list[str] = []
    media: list[MediaPart] = []
    for message in body.messages:
        parts = [TextPart(type="text", text=message.content)] if isinstance(message.content, str) else message.content
        texts = [part.text for part in parts if isinstance(part, TextPart)]
        media += [part for part in parts if not isinstance(part, TextPart)]
        if message.role in ("system", "developer"):
            system += texts
        else:
            turns += [f"{message.role}: {text}" if len(body.messages) > 1 else text for text in texts]
    if len(media) > 1:
        raise invalid(
            f"give at most one image_url, input_audio or video_url part (this one has {len(media)}): "
            "each call runs on one media input"
        )
    params: dict[str, Any] = {
        "prompt": ("\n".join(turns) or "Describe this.")[:4000],
        **sampling(body.temperature, body.top_p),
    }
    if system:
        params["system_prompt"] = "\n".join(system)[:4000]
    if body.max_completion_tokens or body.max_tokens:
        params["max_new_tokens"] = body.max_completion_tokens or body.max_tokens
    if body.modalities and "audio" in body.modalities:
        if body.audio is None:
            raise invalid('modalities ["text", "audio"] need audio: {"voice": ..., "format": "wav"}')
        if not settings.speech_available():
            raise invalid("this deployment runs no talker: speech output is not available here; ask for text")
        params["voice"] = Voice.parse(body.audio.voice).value
    return params, (media[0] if media else None)


async def _media(part: MediaPart, settings: Settings, tenant: str) -> tuple[IO[bytes], str]:
    """The part's media in a temporary file, and a file name for it."""
    limit = settings.openai_media_max_bytes
    if part.type == "input_audio":
        return decode_base64(part.input_audio.data, limit), f"audio.{part.input_audio.format}"
    url = part.image_url.url if part.type == "image_url" else part.video_url.url
    stem = "image" if part.type == "image_url" else "video"
    if url.startswith("data:"):
        return decode_data_url(url, limit), stem
    if url.startswith(("http://", "https://")):
        return await fetch_media(url, settings, tenant, limit), stem
    raise invalid(f"{part.type} needs a data: URL or an http(s) URL")


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
    yield _chunk(job_id, model, created, {}, finish=(job.result or {}).get("finish") or "stop")
    yield b"data: [DONE]\n\n"


def _progress(job_id: str, following: int) -> tuple[str, list[tuple[int, str]]]:
    """The job's state, and (index, text) of its finished segments from index `following` on, in order. The state
    is read first: a segment that lands between the two reads is sent with the next poll, never skipped."""
    with get_sessionmaker()() as session:
        state = session.scalar(select(Job.state).where(Job.id == job_id)) or JobState.FAILED
        rows = session.execute(
            select(JobSegment.index, JobSegment.text)
            .where(JobSegment.job_id == job_id, JobSegment.index >= following)
            .order_by(JobSegment.index)
        ).all()
    return state, [(int(index), text or "") for index, text in rows]


def _chunk(job_id: str, model: str, created: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {
        "id": f"chatcmpl-{job_id}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n".encode()


def _error(status: int, kind: str, detail: str) -> bytes:
    _, body = openai_error(status, kind, detail, detail)
    return f"data: {json.dumps(body)}\n\n".encode()
