"""OpenAI-compatible speech to text: POST /v1/audio/transcriptions and /v1/audio/translations (multipart, the
official clients' request), each a durable transcribe or translate job, answered when it ends."""

from __future__ import annotations

from typing import IO, Annotated, Any, Literal

from fastapi import APIRouter, Form, Header, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import Field

from api.deps import SessionDep, SettingsDep, StorageDep, TenantDep
from api.openai_chat_body import decode_data_url, invalid
from api.openai_compat import Call, check_model, sampling, submit, succeeded, wait_final
from api.openai_errors import OPENAI_RESPONSES
from api.problems import Problem
from core.config import Settings
from core.errors import ProblemKind
from core.jobs.outputs import CONTENT_TYPES, render, timed_segments
from models.captions import shape_cues

router = APIRouter(prefix="/v1/audio", tags=["openai"], responses=OPENAI_RESPONSES)
ResponseFormat = Literal["json", "text", "srt", "vtt", "verbose_json", "diarized_json"]
MAX_KNOWN_SPEAKERS = 4  # as OpenAI's diarizing transcription model takes
Granularity = Literal["word", "segment"]


@router.post("/transcriptions")
async def transcriptions(
    file: UploadFile,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    tenant: TenantDep,
    model: Annotated[str, Form()],
    language: Annotated[str | None, Form(max_length=40)] = None,
    prompt: Annotated[str | None, Form(max_length=4000)] = None,
    temperature: Annotated[float, Form(ge=0, le=2)] = 0.0,
    response_format: Annotated[ResponseFormat, Form()] = "json",
    timestamp_granularities: Annotated[list[Granularity] | None, Form(alias="timestamp_granularities[]")] = None,
    known_speaker_names: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=64)]] | None,
        Form(alias="known_speaker_names[]", max_length=MAX_KNOWN_SPEAKERS),
    ] = None,
    known_speaker_references: Annotated[
        list[str] | None, Form(alias="known_speaker_references[]", max_length=MAX_KNOWN_SPEAKERS)
    ] = None,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> Response:
    """Speech to text in the language spoken. verbose_json carries segments (the caption cues) and, with
    timestamp_granularities[]=word, words with their times; diarized_json carries segments with their speakers
    (named by known_speaker_names[] where known_speaker_references[] clips, as data: URLs, match)."""
    params: dict[str, Any] = {**sampling(temperature)}
    if language:
        params["language"] = language
    if prompt:
        params["context"] = prompt
    if response_format == "diarized_json" or known_speaker_names:
        params["diarize"] = True
    speakers = _known_speakers(known_speaker_names or [], known_speaker_references or [], settings)
    return await _run(
        "transcribe",
        params,
        file,
        session,
        storage,
        settings,
        tenant,
        model,
        response_format,
        [str(g) for g in timestamp_granularities or ["segment"]],
        idempotency_key,
        speakers,
    )


def _known_speakers(names: list[str], references: list[str], settings: Settings) -> tuple[tuple[str, IO[bytes]], ...]:
    """The named reference clips, decoded from their data: URLs into temporary files."""
    if len(names) != len(references):
        raise invalid("give one known_speaker_references[] clip (a data: URL) for each known_speaker_names[]")
    limit = settings.openai_media_max_bytes
    return tuple((name, decode_data_url(url, limit)) for name, url in zip(names, references, strict=True))


@router.post("/translations")
async def translations(
    file: UploadFile,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    tenant: TenantDep,
    model: Annotated[str, Form()],
    prompt: Annotated[str | None, Form(max_length=4000)] = None,
    temperature: Annotated[float, Form(ge=0, le=2)] = 0.0,
    response_format: Annotated[ResponseFormat, Form()] = "json",
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> Response:
    """Speech to English text (as OpenAI's translations), timed by segment."""
    params: dict[str, Any] = {"target_language": "English", **sampling(temperature)}
    del prompt  # accepted for compatibility; the translate task takes no context
    return await _run(
        "translate",
        params,
        file,
        session,
        storage,
        settings,
        tenant,
        model,
        response_format,
        ["segment"],
        idempotency_key,
    )


async def _run(
    task: str,
    params: dict[str, Any],
    file: UploadFile,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    tenant: str,
    model: str,
    response_format: str,
    granularities: list[str],
    idempotency_key: str | None,
    speakers: tuple[tuple[str, IO[bytes]], ...] = (),
) -> Response:
    check_model(settings, model)
    if not file.size:
        raise Problem(400, ProblemKind.EMPTY_FILE, "The file is empty", "the uploaded file has no bytes")
    await file.seek(0)  # the parser spooled the upload to a temporary file: it streams on to storage from there
    call = Call(task, params, file.file, file.filename or "audio", file.content_type, speakers)
    try:
        job = await run_in_threadpool(submit, session, storage, settings, tenant, call, idempotency_key)
    finally:
        for _, clip in speakers:
            clip.close()
    job = await wait_final(job.id, tenant, settings.openai_wait_s)
    result = succeeded(job)
    headers = {"X-Omnimedia-Job": job.id}
    if response_format in ("srt", "vtt"):
        return Response(
            render(job.id, job.task, result, response_format),
            media_type=CONTENT_TYPES[response_format],
            headers=headers,
        )
    if response_format == "text":
        return PlainTextResponse(result.get("text", "") + "\n", headers=headers)
    if response_format == "json":
        return JSONResponse({"text": result.get("text", "")}, headers=headers)
    if response_format == "diarized_json":
        return JSONResponse(diarized(job.id, result), headers=headers)
    return JSONResponse(verbose(task, job.id, result, granularities, params), headers=headers)


def verbose(
    task: str, job_id: str, result: dict[str, Any], granularities: list[str], params: dict[str, Any]
) -> dict[str, Any]:
    """OpenAI's verbose_json: segments are the caption cues (they follow the speech), words come with
    timestamp_granularities[]=word; statistics the model does not give (log probabilities) are null."""
    cues = shape_cues(timed_segments(result))
    body: dict[str, Any] = {
        "task": "transcribe" if task == "transcribe" else "translate",
        "language": result.get("language") or "unknown",  # asked, or detected from the text (ISO 639-1)
        "duration": result.get("duration_s", 0.0),
        "text": result.get("text", ""),
    }
    body["segments"] = [
        {
            "id": index,
            "seek": 0,
            "start": cue.start,
            "end": cue.end,
            "text": cue.text.replace("\n", " "),
            "tokens": [],
            "temperature": params.get("temperature", 0.0),
            "avg_logprob": None,
            "compression_ratio": None,
            "no_speech_prob": None,
        }
        for index, cue in enumerate(cues)
    ]
    if "word" in granularities and "words" in result:
        body["words"] = result["words"]
    body["x_omnimedia"] = {
        "job_id": job_id,
        "word_timing": result.get("word_timing"),
        "warnings": result.get("warnings", []),
    }
    return body


def diarized(job_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's diarized_json: the transcript's segments, each with its speaker (a run of one speaker's words)."""
    segments = [
        {
            "type": "transcript.text.segment",
            "id": f"seg_{index:03d}",
            "start": s["start"],
            "end": s["end"],
            "text": s["text"],
            "speaker": s.get("speaker") or "unknown",
        }
        for index, s in enumerate(result.get("segments", []))
        if s.get("text")
    ]
    return {
        "task": "transcribe",
        "duration": result.get("duration_s", 0.0),
        "text": result.get("text", ""),
        "segments": segments,
        "usage": {"type": "duration", "seconds": round(float(result.get("duration_s") or 0.0))},
        "x_omnimedia": {"job_id": job_id, "speakers": result.get("speakers", [])},
    }
