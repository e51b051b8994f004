"""The OpenAI-compatible routes, driven by the official `openai` client against a running API on the embedded
default (uvicorn, SQLite, the in-process worker, the tiny model with its talker): transcriptions in every
response_format, translations, chat completions with image, audio and video parts, speech output, streaming,
errors in OpenAI's shape. Each call is a durable job (it shows in /v1/jobs; an Idempotency-Key returns it)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
import soundfile as sf

from core import migrate
from tests.support import api_key, env_for, running_api

pytestmark = pytest.mark.slow


@dataclass
class Api:
    client: openai.OpenAI
    http: httpx.Client
    model: str


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("openai")
    data = root / "data"
    data.mkdir()
    migrate.upgrade(f"sqlite:///{data / 'omnimedia.db'}")
    # OMNIMEDIA_ENABLE_TALKER unset: the embedded default loads the talker on the first speech call.
    env = env_for(
        OMNIMEDIA_DATA_DIR=str(data),
        OMNIMEDIA_MODEL=str(tiny_model),
        OMNIMEDIA_MAX_NEW_TOKENS_CAP="12",
        OMNIMEDIA_TALKER_MAX_NEW_TOKENS="30",
        OMNIMEDIA_TALKER_DO_SAMPLE="false",
        OMNIMEDIA_ALLOW_ANONYMOUS="false",
    )
    key = api_key(env, "oa")
    with running_api(env, root / "api.log") as running:
        base = running.base
        client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=300)
        model = client.models.list().data[0].id
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
            yield Api(client, http, model)


def _data_url(path: Path, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def test_models_lists_the_public_name_never_a_path_and_refuses_others(api: Api, tiny_model: Path) -> None:
    ids = [m.id for m in api.client.models.list().data]
    assert ids == [tiny_model.name] and all("/" not in i for i in ids), "a local checkpoint shows its folder's name"
    for wrong in ("whisper-9", str(tiny_model)):  # the server's path is not a model name either
        with pytest.raises(openai.NotFoundError) as refused:
            api.client.audio.transcriptions.create(model=wrong, file=("a.wav", b"RIFF"))
        assert refused.value.body["code"] == "model_not_found"  # type: ignore[index]
        assert str(tiny_model) not in refused.value.body["message"]  # type: ignore[index]


@pytest.mark.parametrize("fmt", ["json", "text", "srt", "vtt", "verbose_json"])
def test_transcriptions_in_every_response_format(api: Api, media: dict[str, Path], fmt: str) -> None:
    with media["speech_wav"].open("rb") as fh:
        answer = api.client.audio.transcriptions.create(model=api.model, file=fh, response_format=fmt)  # type: ignore[call-overload]
    if fmt == "json":
        assert isinstance(answer.text, str) and answer.text
    elif fmt == "text":
        assert isinstance(answer, str) and answer.strip()
    elif fmt == "srt":
        assert "-->" in answer and "," in answer.split("-->")[0]
    elif fmt == "vtt":
        assert answer.startswith("WEBVTT") and "-->" in answer
    else:
        assert answer.text and answer.duration > 0 and answer.segments


def test_verbose_json_carries_words_and_segments_inside_the_audio(api: Api, media: dict[str, Path]) -> None:
    duration = sf.info(media["speech_wav"]).duration
    answer = api.client.audio.transcriptions.create(
        model=api.model,
        file=media["speech_wav"].open("rb"),
        response_format="verbose_json",
        language="en",
        timestamp_granularities=["word", "segment"],
    )
    assert answer.language == "en" and answer.words and answer.segments
    assert all(0 <= w.start <= w.end <= duration + 0.01 for w in answer.words)
    assert all(a.end <= b.start + 1e-6 for a, b in zip(answer.words, answer.words[1:], strict=False))
    assert all(0 <= s.start < s.end <= duration + 0.01 for s in answer.segments)
    assert " ".join(w.word for w in answer.words).split() == answer.text.split()


def test_verbose_json_reports_the_detected_language_when_none_was_asked(api: Api, media: dict[str, Path]) -> None:
    answer = api.client.audio.transcriptions.create(
        model=api.model, file=media["speech_wav"].open("rb"), response_format="verbose_json"
    )
    from models.language import detect_language

    assert answer.language != "unknown" and answer.language == detect_language(answer.text)


def test_translations(api: Api, media: dict[str, Path]) -> None:
    plain = api.client.audio.translations.create(model=api.model, file=media["speech_wav"].open("rb"))
    verbose = api.client.audio.translations.create(
        model=api.model, file=media["speech_wav"].open("rb"), response_format="verbose_json"
    )
    assert plain.text and verbose.segments and not getattr(verbose, "words", None)


@pytest.mark.parametrize(
    ("kind", "key"), [("image_url", "image_png"), ("input_audio", "speech_wav"), ("video_url", "video_av")]
)
def test_chat_completions_with_image_audio_and_video(api: Api, media: dict[str, Path], kind: str, key: str) -> None:
    part: dict[str, object]
    if kind == "image_url":
        part = {"type": "image_url", "image_url": {"url": _data_url(media[key], "image/png")}}
    elif kind == "input_audio":
        part = {
            "type": "input_audio",
            "input_audio": {"data": base64.b64encode(media[key].read_bytes()).decode(), "format": "wav"},
        }
    else:
        part = {"type": "video_url", "video_url": {"url": _data_url(media[key], "video/mp4")}}
    completion = api.client.chat.completions.create(
        model=api.model,
        max_tokens=8,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [part, {"type": "text", "text": "What is this?"}]},
        ],  # type: ignore[list-item]
    )
    # The tiny model never emits its end token: every answer runs to max_tokens, which OpenAI calls "length".
    assert completion.choices[0].finish_reason == "length" and completion.choices[0].message.content
    usage = completion.usage
    assert usage is not None and usage.completion_tokens == 8 and usage.prompt_tokens > 20, "media counts too"
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    job_id = completion.id.removeprefix("chatcmpl-")
    job = api.http.get(f"/v1/jobs/{job_id}").json()
    assert job["task"] == "custom" and job["state"] == "succeeded", "every call is a durable job"


def test_speech_output_is_a_24k_wav_in_message_audio(api: Api, media: dict[str, Path]) -> None:
    completion = api.client.chat.completions.create(
        model=api.model,
        modalities=["text", "audio"],
        audio={"voice": "Chelsie", "format": "wav"},
        max_tokens=6,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": _data_url(media["image_png"], "image/png")}},
                    {"type": "text", "text": "Say what you see."},
                ],
            }
        ],
    )
    audio = completion.choices[0].message.audio
    assert audio is not None and audio.transcript == completion.choices[0].message.content
    samples, rate = sf.read(io.BytesIO(base64.b64decode(audio.data)))
    assert rate == 24_000 and samples.size > 0


def test_a_streamed_completion_sends_the_text_then_stops(api: Api, media: dict[str, Path]) -> None:
    stream = api.client.chat.completions.create(
        model=api.model,
        stream=True,
        max_tokens=8,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "input_audio",
                        "input_audio": {
                            "data": base64.b64encode(media["speech_wav"].read_bytes()).decode(),
                            "format": "wav",
                        },
                    },
                    {"type": "text", "text": "Transcribe it."},
                ],
            }
        ],
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[0].choices[0].delta.role == "assistant" and text
    assert chunks[-1].choices[0].finish_reason == "length"


def test_errors_come_in_openai_shape(api: Api, tmp_path: Path) -> None:
    bad = tmp_path / "notes.wav"
    bad.write_bytes(b"these are meeting notes, not audio\n" * 20)
    with pytest.raises(openai.BadRequestError) as refused:
        api.client.audio.transcriptions.create(model=api.model, file=bad.open("rb"))
    error = refused.value.body
    assert refused.value.status_code == 400 and error["type"] == "invalid_request_error"  # type: ignore[index]
    assert "not a media file" in error["message"] and error["code"] == "media"  # type: ignore[index]
    two = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}] * 2
    with pytest.raises(openai.BadRequestError, match="at most one"):  # one media input a call
        api.client.chat.completions.create(model=api.model, messages=[{"role": "user", "content": two}])
    wrong = openai.OpenAI(base_url=str(api.client.base_url), api_key="omk_bad_key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as unauthorized:
        wrong.models.list()
    assert unauthorized.value.body["type"] == "authentication_error"  # type: ignore[index]


def test_an_idempotency_key_returns_the_first_calls_job(api: Api, media: dict[str, Path]) -> None:
    headers = {"Idempotency-Key": "oa-once"}
    first = api.client.audio.transcriptions.with_raw_response.create(
        model=api.model, file=media["speech_wav"].open("rb"), extra_headers=headers
    )
    again = api.client.audio.transcriptions.with_raw_response.create(
        model=api.model, file=media["speech_wav"].open("rb"), extra_headers=headers
    )
    job = first.headers["x-omnimedia-job"]
    assert again.headers["x-omnimedia-job"] == job
    found = api.http.get("/v1/jobs", params={"idempotency_key": "oa-once"}).json()["data"]
    assert [j["id"] for j in found] == [job]


def test_a_text_only_chat_completion_through_the_official_client(api: Api) -> None:
    """No media part: the conversation runs as a text-only request through the same engine and batcher."""
    answer = api.client.chat.completions.create(
        model=api.model,
        messages=[
            {"role": "system", "content": "Answer in one word."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
        max_tokens=6,
    )
    assert answer.choices[0].message.content is not None and answer.choices[0].finish_reason in ("stop", "length")
    assert answer.usage is not None and answer.usage.completion_tokens == 6 and answer.usage.prompt_tokens > 10
