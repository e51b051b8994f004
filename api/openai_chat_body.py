"""The body of POST /v1/chat/completions: typed parts, a bounded shape, and read so that an accepted request costs
at most about twice its size in memory.

The body (capped by the caller guard at the inline media limit plus CHAT_TEXT_BYTES) is read into one buffer, its
shape checked before anything is parsed (core.bounded_json: depth, number of values), parsed, and validated into
the models below; the media part is then decoded to a temporary file in slices (core.remote_media.spooled)."""

from __future__ import annotations

import base64
import binascii
from typing import IO, Annotated, Literal

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.problems import Problem
from core import bounded_json
from core.errors import ProblemKind, Refusal
from core.remote_media import spooled

CHAT_TEXT_BYTES = 2 * 1024 * 1024  # the text of a call (turns, system prompt, fields) beside its media
MAX_MESSAGES = 64
MAX_PARTS = 16
BASE64_SLICE = 4 * 256 * 1024  # characters decoded at a time (a multiple of 4)
AudioFormat = Literal["wav", "mp3", "flac", "ogg", "m4a", "webm", "aac"]


class TextPart(BaseModel):
    type: Literal["text"]
    text: str = Field(max_length=CHAT_TEXT_BYTES)


class MediaURL(BaseModel):
    url: str = Field(min_length=1, description="a data: URL (base64) or a public http(s) URL")
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(BaseModel):
    type: Literal["image_url"]
    image_url: MediaURL


class VideoPart(BaseModel):
    type: Literal["video_url"]
    video_url: MediaURL


class InputAudio(BaseModel):
    data: str = Field(min_length=1, description="base64 audio")
    format: AudioFormat = "wav"


class AudioPart(BaseModel):
    type: Literal["input_audio"]
    input_audio: InputAudio


Part = Annotated[TextPart | ImagePart | VideoPart | AudioPart, Field(discriminator="type")]
MediaPart = ImagePart | VideoPart | AudioPart


class Message(BaseModel):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | Annotated[list[Part], Field(min_length=1, max_length=MAX_PARTS)]
    name: str | None = Field(None, max_length=256)


class AudioOut(BaseModel):
    voice: Literal["Ethan", "Chelsie", "Aiden", "ethan", "chelsie", "aiden"]
    format: Literal["wav"] = "wav"


class ChatRequest(BaseModel):
    """What this service reads of OpenAI's chat request; other fields clients send are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=256)
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    modalities: list[Literal["text", "audio"]] | None = Field(None, max_length=2)
    audio: AudioOut | None = None
    max_tokens: int | None = Field(None, ge=1, le=8192)
    max_completion_tokens: int | None = Field(None, ge=1, le=8192)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stream: bool = False


def invalid(detail: str) -> Problem:
    return Problem(400, ProblemKind.INVALID_REQUEST, "The request is not valid", detail)


async def read_chat(request: Request) -> ChatRequest:
    """The body as a ChatRequest; 400 for anything malformed (never a 500)."""
    declared = request.headers.get("content-length", "")
    buffer = bytearray(int(declared)) if declared.isdigit() else bytearray()
    filled = 0
    async for chunk in request.stream():  # the guard has bounded its size and its time
        if filled + len(chunk) <= len(buffer):
            buffer[filled : filled + len(chunk)] = chunk
        else:
            del buffer[filled:]
            buffer += chunk
        filled += len(chunk)
    del buffer[filled:]
    try:
        text = buffer.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise invalid("the body is not UTF-8") from exc
    del buffer  # the text alone from here: its strings are the only other copy
    try:
        return ChatRequest.model_validate(bounded_json.loads(text))
    except bounded_json.InvalidJSON as exc:
        raise invalid(str(exc)) from exc
    except ValidationError as exc:
        first = max(exc.errors(), key=lambda error: len(error.get("loc", ())))  # the most specific of a union's
        where = ".".join(str(part) for part in first.get("loc", ()))
        raise invalid(f"{where}: {first.get('msg')}" if where else str(first.get("msg"))) from exc


def decode_data_url(url: str, limit: int) -> IO[bytes]:
    """A base64 data: URL's payload in a temporary file (400 for anything else)."""
    comma = url.find(",", 0, 256)  # data:<media type>[;params];base64,<payload>
    if not url.startswith("data:") or comma < 0 or ";base64" not in url[:comma]:
        raise invalid("data URLs must be base64: data:<type>;base64,<data>")
    return decode_base64(url, limit, start=comma + 1)


def decode_base64(text: str, limit: int, start: int = 0) -> IO[bytes]:
    """The base64 in `text` from `start` on (a data: URL's payload, never copied out whole), decoded slice by
    slice into a temporary file (positioned at its start)."""
    if len(text) - start > limit * 4 // 3 + 4:
        raise Problem(413, Refusal.UPLOAD_TOO_LARGE, "Media is too large", f"the limit is {limit} bytes")
    out = spooled()
    try:
        for offset in range(start, len(text), BASE64_SLICE):
            out.write(base64.b64decode(text[offset : offset + BASE64_SLICE], validate=True))
    except (binascii.Error, ValueError) as exc:
        out.close()
        raise invalid("the media is not valid base64") from exc
    out.seek(0)
    return out
