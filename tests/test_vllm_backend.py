"""The vLLM path without vLLM: it needs its own image and a GPU, so here its start-up refusals, engine arguments,
token budgets, prompt rendering (on the tiny checkpoint's real processor) and the batcher that owns it are checked
with the transformers engine standing in where vLLM itself cannot load. The GPU test runs where vllm is installed."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from models.budget import audio_tokens, encoder_budget, segment_budget_s, video_tokens_per_s
from models.engine import EngineConfig, GenerationRequest
from models.errors import BackendUnavailable, PromptTooLong
from models.media import MediaInfo, MediaKind, MediaLimits, frame_size, load_media, text_media
from models.prompting import video_processor_kwargs
from models.tasks import CATALOGUE, get_task, parse_params
from models.vllm_backend import VllmEngine, engine_args, expand_as_vllm, too_long, vllm_available
from tests.support import REPO, wait_for

DEFAULT_LIMITS = MediaLimits()
HD_LIMITS = MediaLimits(max_frame_pixels=1280 * 720)


def test_without_vllm_the_backend_points_at_its_image(tiny_model: Path) -> None:
    if vllm_available():
        pytest.skip("vllm is installed: see the GPU test below")
    with pytest.raises(BackendUnavailable, match=r"infra/Dockerfile\.vllm"):
        VllmEngine(EngineConfig(str(tiny_model), backend="vllm"))


def test_engine_arguments_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.config import Settings

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    settings = Settings(backend="vllm", max_model_len=65536, vllm_gpu_memory_utilization=0.6, vllm_max_num_seqs=4)
    args = engine_args(settings.engine_config())
    assert args["tensor_parallel_size"] == 2, "tensor parallel over every GPU of the slot by default"
    assert (args["max_model_len"], args["gpu_memory_utilization"], args["max_num_seqs"]) == (65536, 0.6, 4)
    assert engine_args(Settings(vllm_tensor_parallel_size=1).engine_config())["tensor_parallel_size"] == 1


@pytest.mark.parametrize(
    ("limits", "size", "context", "seconds"),
    [
        (DEFAULT_LIMITS, (1280, 720), 32768, 135),
        (DEFAULT_LIMITS, (640, 360), 32768, 135),
        (DEFAULT_LIMITS, (1280, 720), 65536, 275),
        (HD_LIMITS, (1280, 720), 32768, 35),
        (HD_LIMITS, (1280, 720), 65536, 71),
        (HD_LIMITS, (640, 360), 32768, 135),
    ],
)
def test_video_segments_fit_the_context(limits: MediaLimits, size: tuple[int, int], context: int, seconds: int) -> None:
    """A second of video at 2 fps is (H/16 x W/16)/4 tokens plus 13 of its audio: 640x352 frames (what 720p and
    360p both decode to by default) are 233 a second, 1280x704 frames 893."""
    info = MediaInfo(MediaKind.VIDEO, 3600.0, True, *size)
    assert segment_budget_s(info, limits, context, 1024) == seconds


def test_audio_segments_fit_the_context_and_images_have_no_budget() -> None:
    assert audio_tokens(300) == 3900 and audio_tokens(1) == 13
    audio = MediaInfo(MediaKind.AUDIO, 3600.0, True)
    assert segment_budget_s(audio, DEFAULT_LIMITS, 32768, 1024) == 2422
    assert segment_budget_s(audio, DEFAULT_LIMITS, 65536, 1024) == 4942
    assert segment_budget_s(MediaInfo(MediaKind.IMAGE, 0.0, False, 800, 600), DEFAULT_LIMITS, 32768, 1024) is None


@pytest.mark.parametrize("limits", [DEFAULT_LIMITS, HD_LIMITS])
@pytest.mark.parametrize("size", [(320, 240), (640, 360), (1280, 720), (1920, 1080), (3840, 2160), (1080, 1920)])
@pytest.mark.parametrize(("context", "batched"), [(32768, 0), (32768, 16384), (65536, 0), (131072, 32768)])
def test_no_video_segment_has_more_embeddings_than_the_engine_accepts(
    limits: MediaLimits, size: tuple[int, int], context: int, batched: int
) -> None:
    """vLLM refuses a media item larger than its encoder cache (at least max_num_batched_tokens): the planner caps
    a segment's video embeddings at the same budget the engine is given, for every frame size."""
    info = MediaInfo(MediaKind.VIDEO, 3 * 3600.0, True, *size)
    budget = encoder_budget(context, batched)
    seconds = segment_budget_s(info, limits, context, 1024, budget)
    assert seconds is not None
    per_s = video_tokens_per_s(*frame_size(info.width, info.height, limits.max_frame_pixels))
    assert seconds * per_s <= budget or seconds == 5.0
    config = EngineConfig("m", backend="vllm", max_model_len=context, max_num_batched_tokens=batched)
    assert engine_args(config)["max_num_batched_tokens"] == budget == (batched or context)


class VLLMError(Exception):  # vllm/exceptions.py's hierarchy, as vLLM 0.33 defines it (vLLM cannot load here)
    pass


class VLLMClientError(VLLMError):
    pass


class VLLMValidationError(VLLMClientError):
    pass


@pytest.mark.parametrize(
    ("error", "is_too_long"),
    [
        (
            VLLMValidationError("The decoder prompt (length 40000) is longer than the maximum model length of 32768."),
            True,
        ),
        (
            VLLMValidationError("This model's maximum context length is 32768 tokens. However, you requested 40000"),
            True,
        ),
        (VLLMValidationError("The request exceeds the pre-allocated encoder cache size (25088)."), True),
        (ValueError("The decoder prompt (length 40000) is longer than the maximum model length of 32768."), True),
        (VLLMValidationError("temperature must be non-negative"), False),
        (RuntimeError("... is longer than the maximum model length ..."), False),
    ],
)
def test_vllms_too_long_errors_become_the_typed_too_long_failure(
    tiny_model: Path, media: dict[str, Path], error: Exception, is_too_long: bool
) -> None:
    assert too_long(error) is is_too_long
    engine = _engine(tiny_model)

    class Refusing:
        def generate(self, *args: object, **kwargs: object) -> None:
            raise error

    engine._llm = Refusing()
    engine.sampling = lambda request: None  # type: ignore[method-assign]  # vLLM's SamplingParams: not here
    request = GenerationRequest(get_task("transcribe"), parse_params("transcribe", {}), load_media(media["speech_wav"]))
    with pytest.raises(PromptTooLong if is_too_long else type(error)):
        engine._generate_batch([request])


def _engine(tiny_model: Path, **config: object) -> VllmEngine:
    """A VllmEngine with the real tiny processor and no LLM (vLLM cannot load here): rendering and validation
    are all vLLM-free."""
    from transformers import Qwen3OmniMoeProcessor

    from models.variants import detect_variant

    engine = object.__new__(VllmEngine)
    engine.config = EngineConfig(str(tiny_model), backend="vllm", **config)  # type: ignore[arg-type]
    engine._variant = detect_variant(str(tiny_model))
    engine._processor = Qwen3OmniMoeProcessor.from_pretrained(str(tiny_model))
    engine._lock = threading.Lock()
    engine._llm = None
    return engine


@pytest.mark.parametrize("task", sorted(t.value for t in CATALOGUE))
def test_every_task_renders_one_placeholder_per_medium_and_the_same_frame_sizing(
    tiny_model: Path, media: dict[str, Path], task: str
) -> None:
    engine = _engine(tiny_model)
    spec = get_task(task)
    extra = {"translate": {"target_language": "de"}, "ask": {"question": "What?"}, "custom": {"prompt": "Hi."}}
    kind = sorted(spec.accepts, key=lambda k: ["video", "audio", "image", "text"].index(k.value))[0]
    extra["subtitles"] = {"target_language": "de", "text": "1. Good evening."}
    params = parse_params(task, {"max_new_tokens": 8, **extra.get(task, {})})
    if kind is MediaKind.TEXT:  # a text-only request: the prompt alone, no media and no placeholder
        rendered = engine.prompt(GenerationRequest(spec, params, text_media()))
        assert set(rendered) == {"prompt"} and "Good evening" in rendered["prompt"]
        assert not any(pad in rendered["prompt"] for pad in ("<|audio_pad|>", "<|image_pad|>", "<|video_pad|>"))
        return
    path = {
        MediaKind.VIDEO: media["video_av"],
        MediaKind.AUDIO: media["speech_wav"],
        MediaKind.IMAGE: media["image_png"],
    }[kind]
    request = GenerationRequest(spec, params, load_media(path))
    engine.validate(request)
    rendered = engine.prompt(request)
    prompt, data, kwargs = rendered["prompt"], rendered["multi_modal_data"], rendered["mm_processor_kwargs"]
    counts = {
        name: prompt.count(token)
        for name, token in (("audio", "<|audio_pad|>"), ("image", "<|image_pad|>"), ("video", "<|video_pad|>"))
    }
    assert sum(counts.values()) == 1, (task, prompt)
    if "video" in data:
        assert data["video"].shape[0] % 2 == 0 and kwargs["videos_kwargs"] == video_processor_kwargs(DEFAULT_LIMITS)
        assert kwargs["use_audio_in_video"] == ("audio" in data)
    if "audio" in data:
        audio, rate = data["audio"]
        assert rate == 16_000 and audio.dtype.name == "float32"
    assert counts["video"] == ("video" in data) and counts["image"] == ("image" in data)
    # As vLLM calls the HF processor (every mm_processor_kwargs entry a keyword): it accepts them and expands each
    # placeholder to the media's tokens (it refused `fps` given both alone and inside videos_kwargs).
    ids = expand_as_vllm(engine._processor, rendered)["input_ids"][0].tolist()
    pads = {
        name: ids.count(engine._processor.tokenizer.convert_tokens_to_ids(token))
        for name, token in (("audio", "<|audio_pad|>"), ("image", "<|image_pad|>"), ("video", "<|video_pad|>"))
    }
    assert all((pads[name] > 1) == (name in data) for name in pads), (task, pads)


def test_a_segment_over_the_context_is_refused_before_vllm_sees_it(tiny_model: Path, media: dict[str, Path]) -> None:
    engine = _engine(tiny_model, max_model_len=400)  # 3 s of 320x224 frames with audio: about 500 tokens
    request = GenerationRequest(
        get_task("describe_video"), parse_params("describe_video", {"max_new_tokens": 8}), load_media(media["video_av"])
    )
    with pytest.raises(PromptTooLong, match="context is 400"):
        engine.validate(request)


class TinyStepper:
    """vLLM's add/step interface over the tiny transformers engine (the real model): a request runs for STEPS steps
    after it is added, and its result is the model's answer. Records which thread called and at which step each
    request was added and finished."""

    STEPS = 3

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.running: dict[str, tuple[GenerationRequest, int]] = {}
        self.threads: set[str] = set()
        self.steps = 0
        self.added: dict[str, int] = {}
        self.finished: dict[str, int] = {}
        self.dies = False
        self.hold_until = 0  # nothing finishes before this many requests were added (or 10 s passed)
        self._started = time.monotonic()

    def add(self, request_id: str, request: GenerationRequest) -> None:
        self.threads.add(threading.current_thread().name)
        self.running[request_id] = (request, self.steps)
        self.added[request_id] = self.steps

    def step(self) -> list[tuple[str, Any]]:
        self.threads.add(threading.current_thread().name)
        if self.dies:
            raise RuntimeError("EngineCore encountered an issue")  # how vLLM's EngineDeadError reads
        self.steps += 1
        time.sleep(0.05)
        holding = len(self.added) < self.hold_until and time.monotonic() - self._started < 10
        done = [] if holding else [rid for rid, (_, at) in self.running.items() if self.steps - at >= self.STEPS]
        results = self.backend.run_validated([self.running.pop(rid)[0] for rid in done]) if done else []
        self.finished.update({rid: self.steps for rid in done})
        return list(zip(done, results, strict=True))

    def unfinished(self) -> int:
        return len(self.running)


@pytest.fixture
def stepped(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The loader's vLLM engine, with the tiny model behind vLLM's stepping interface."""
    from models import loader, vllm_backend
    from models.transformers_backend import TransformersEngine

    class StandIn(TransformersEngine):
        def stepper(self) -> TinyStepper:
            return TinyStepper(self)

    monkeypatch.setattr(vllm_backend, "VllmEngine", StandIn)
    engine = loader.load_engine(EngineConfig(str(tiny_model), backend="vllm", max_new_tokens_cap=4))
    yield engine
    loader.unload_engine(engine)


def test_requests_join_the_running_batch_from_one_thread_that_owns_the_engine(
    stepped: Any, media: dict[str, Path]
) -> None:
    """However many job threads call generate, one loop thread adds and steps; a request that arrives while others
    run is added at the next step, not after them, and every answer is the model's own."""
    from models.stepping import SteppingEngine

    assert isinstance(stepped, SteppingEngine)
    request = GenerationRequest(
        get_task("transcribe"), parse_params("transcribe", {"max_new_tokens": 4}), load_media(media["speech_wav"])
    )
    alone = stepped.inner.generate(request).text
    stepped.load()
    stepped.stepper.hold_until = 7  # the first request runs on until the six others have arrived
    first = threading.Thread(target=stepped.generate, args=(request,))
    first.start()
    wait_for(lambda: stepped.stepper is not None and stepped.stepper.steps >= 1, 30, "the first step")
    answers: list[str] = []
    callers = [threading.Thread(target=lambda: answers.append(stepped.generate(request).text)) for _ in range(6)]
    for caller in callers:
        caller.start()
    for caller in [first, *callers]:
        caller.join()
    stepper = stepped.stepper
    assert stepper.threads == {"omnimedia-engine-loop"}
    first_id = min(stepper.added, key=stepper.added.__getitem__)
    later = [rid for rid in stepper.added if rid != first_id]
    assert len(later) == 6 and any(stepper.added[rid] < stepper.finished[first_id] for rid in later)
    assert answers == [alone] * 6


def test_a_dead_engine_fails_what_it_holds_and_everything_after(stepped: Any, media: dict[str, Path]) -> None:
    from models.errors import EngineDown

    request = GenerationRequest(
        get_task("transcribe"), parse_params("transcribe", {"max_new_tokens": 4}), load_media(media["speech_wav"])
    )
    stepped.load()
    stepped.stepper.dies = True
    with pytest.raises(EngineDown, match="EngineCore encountered an issue"):
        stepped.generate(request)
    started = time.perf_counter()
    with pytest.raises(EngineDown):
        stepped.generate(request)
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    ("env", "pool", "refused"),
    [
        ({"OMNIMEDIA_BACKEND": "vllm"}, "prefork", "prefork pool"),
        ({"OMNIMEDIA_BACKEND": "vllm", "OMNIMEDIA_ENABLE_TALKER": "true"}, "threads", "talker"),
    ],
)
def test_a_vllm_worker_refuses_what_cannot_work(env: dict[str, str], pool: str, refused: str) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OMNIMEDIA_")}
    done = subprocess.run(
        [sys.executable, "-m", "workers.main", "--pool", pool],
        capture_output=True,
        text=True,
        timeout=120,
        env={**environ, **env, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 2 and refused in done.stderr, done.stderr


@pytest.mark.vllm
@pytest.mark.skipif(not vllm_available(), reason="vllm is not installed (its own image: infra/Dockerfile.vllm)")
def test_vllm_generates_text(tiny_model: Path, media: dict[str, Path]) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("vLLM needs a CUDA GPU")
    engine = VllmEngine(EngineConfig(str(tiny_model), backend="vllm", gpu_memory_utilization=0.3))
    request = GenerationRequest(
        get_task("transcribe"), parse_params("transcribe", {"max_new_tokens": 8}), load_media(media["speech_wav"])
    )
    (result,) = engine.generate_batch([request])
    assert 1 <= result.new_tokens <= 8
