"""Cross-request dynamic batching on the tiny model: fewer engine calls, identical outputs, bad items fail alone."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from models.batcher import BatchingEngine
from models.engine import EngineConfig, GenerationRequest
from models.errors import TaskInputError
from models.media import load_media
from models.tasks import get_task, parse_params
from models.transformers_backend import TransformersEngine


def request(task: str, path: Path, **params: object) -> GenerationRequest:
    params.setdefault("max_new_tokens", 5)
    return GenerationRequest(get_task(task), parse_params(task, params), load_media(path))


def test_sixteen_concurrent_requests_batch(tiny_model: Path, media: dict[str, Path]) -> None:
    inner = TransformersEngine(EngineConfig(str(tiny_model), max_batch_size=16))
    kinds = [
        ("transcribe", "speech_wav", {}),
        ("ocr", "image_png", {}),
        ("caption_audio", "tone_mp3", {}),
        ("ask", "video_silent", {"question": "What moves?"}),
    ]
    requests = [request(t, media[k], max_new_tokens=3 + i % 4, **p) for i, (t, k, p) in enumerate(kinds * 4)]
    expected = [inner.generate(r).text for r in requests]
    calls = inner.generate_calls
    batcher = BatchingEngine(inner, max_batch_size=16, max_wait_ms=200)
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(batcher.generate, requests))
    assert [r.text for r in results] == expected
    assert inner.generate_calls - calls < 16
    assert max(batcher.batch_sizes) > 1


def test_a_bad_item_fails_alone(tiny_model: Path, media: dict[str, Path]) -> None:
    inner = TransformersEngine(EngineConfig(str(tiny_model)))
    batcher = BatchingEngine(inner, max_batch_size=8, max_wait_ms=200)
    good = [request("transcribe", media["speech_wav"]) for _ in range(3)]
    broken = request("describe_video", media["video_silent"])
    broken.media.frames = broken.media.frames[:, :0]  # a corrupt decode: zero-width frames
    mismatched = request("ocr", media["image_png"])
    mismatched.media = load_media(media["speech_wav"])  # OCR on audio: rejected before batching
    with ThreadPoolExecutor(5) as pool:
        futures = [pool.submit(batcher.generate, r) for r in [*good, broken, mismatched]]
    assert all(f.result().text for f in futures[:3])
    with pytest.raises(Exception):  # noqa: B017 - the processor's own error for the corrupt frames
        futures[3].result()
    with pytest.raises(TaskInputError, match="does not accept audio"):
        futures[4].result()
