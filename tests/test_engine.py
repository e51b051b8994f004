"""The engine on the tiny real checkpoint: the real load/generate path, every modality, talker, variants."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from models.engine import EngineConfig, GenerationRequest, split_reasoning
from models.errors import CapabilityError, TaskInputError
from models.media import MediaLimits, load_media
from models.prompting import conversation
from models.tasks import get_task, parse_params
from models.transformers_backend import TransformersEngine, load_kwargs
from models.variants import Variant

LIMITS = MediaLimits()


def request(task: str, path: Path, **params: object) -> GenerationRequest:
    params.setdefault("max_new_tokens", 6)
    return GenerationRequest(get_task(task), parse_params(task, params), load_media(path, LIMITS))


@pytest.fixture(scope="module")
def engine(tiny_model: Path) -> TransformersEngine:
    # Greedy talker: random talker weights can sample into NaN probabilities on some draws.
    config = EngineConfig(str(tiny_model), enable_talker=True, talker_max_new_tokens=30, talker_do_sample=False)
    return TransformersEngine(config)


@pytest.fixture(scope="module")
def text_engine(tiny_model: Path) -> TransformersEngine:
    return TransformersEngine(EngineConfig(str(tiny_model), enable_talker=False))


def test_load_once_under_concurrency(tiny_model: Path) -> None:
    engine = TransformersEngine(EngineConfig(str(tiny_model)))
    threads = [threading.Thread(target=engine.load) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    model = engine._model
    engine.load()
    assert model is not None and engine._model is model
    assert not model.has_talker, "the talker must be disabled unless the worker serves speech"
    assert engine.variant is Variant.INSTRUCT


@pytest.mark.parametrize(
    ("task", "key", "params"),
    [
        ("transcribe", "speech_wav", {}),
        ("transcribe", "speech_wav", {"language": "zh"}),
        ("translate", "speech_wav", {"target_language": "de"}),
        ("caption_audio", "tone_mp3", {}),
        ("analyze_music", "tone_mp3", {}),
        ("ocr", "image_png", {}),
        ("ask", "image_jpeg_rotated", {"question": "What colour is it?"}),
        ("describe_video", "video_av", {}),
        ("describe_video", "video_silent", {}),
        ("transcribe", "video_av", {}),
        ("custom", "video_av", {"prompt": "Summarise.", "system_prompt": "Be brief."}),
    ],
)
def test_every_task_generates_text(
    text_engine: TransformersEngine, media: dict[str, Path], task: str, key: str, params: dict
) -> None:
    result = text_engine.generate(request(task, media[key], **params))
    assert 1 <= result.new_tokens <= 6
    assert isinstance(result.text, str) and result.text.strip()
    assert result.audio is None


def test_batch_equals_alone(text_engine: TransformersEngine, media: dict[str, Path]) -> None:
    reqs = [
        request("transcribe", media["speech_wav"], max_new_tokens=5),
        request("describe_video", media["video_av"], max_new_tokens=8),
        request("ocr", media["image_png"], max_new_tokens=3),
        request("ask", media["video_silent"], question="Is anything moving?", max_new_tokens=6),
        request("caption_audio", media["tone_mp3"], max_new_tokens=7),
    ]
    calls = text_engine.generate_calls
    batched = text_engine.generate_batch(reqs)
    batch_calls = text_engine.generate_calls - calls
    alone = [text_engine.generate(r) for r in reqs]
    assert [b.text for b in batched] == [a.text for a in alone]
    assert [b.new_tokens for b in batched] == [5, 8, 3, 6, 7]  # per-request max_new_tokens honoured
    # Each prompt counts its own tokens, not the batch's left padding; all of these hit their limit.
    assert [b.prompt_tokens for b in batched] == [a.prompt_tokens for a in alone]
    assert len({b.prompt_tokens for b in batched}) > 1 and all(b.finish == "length" for b in batched)
    # video-with-audio runs in its own group (use_audio_in_video is per call); the rest share one call
    assert batch_calls == 2


@pytest.mark.parametrize("voice", ["Ethan", "chelsie", "AIDEN"])
def test_speech_in_every_voice(engine: TransformersEngine, media: dict[str, Path], voice: str) -> None:
    result = engine.generate(request("transcribe", media["speech_wav"], voice=voice))
    assert result.audio is not None and result.audio.dtype == np.float32
    # 30 codec steps at 1920 samples a code (minus the decoder's trailing trim) at 24 kHz
    assert 20_000 <= result.audio.size <= 30 * 1920
    assert np.isfinite(result.audio).all()


def test_unknown_voice_is_a_clear_error() -> None:
    with pytest.raises(TaskInputError, match="Ethan, Chelsie, Aiden"):
        parse_params("transcribe", {"voice": "Bob"})


def test_talker_with_audio_and_vision_needs_the_workaround(engine: TransformersEngine, media: dict[str, Path]) -> None:
    """transformers bug: the talker reads audio_config from its own config. The engine patches it after load."""
    result = engine.generate(request("describe_video", media["video_av"], voice="Ethan"))
    assert result.audio is not None and result.audio.size > 0
    talker_config = engine._model.talker.config
    saved = talker_config.audio_config
    del talker_config.audio_config
    try:
        with pytest.raises(AttributeError, match="audio_config"):
            engine.generate(request("describe_video", media["video_av"], voice="Ethan"))
    finally:
        talker_config.audio_config = saved


def test_speech_needs_a_talker_worker(text_engine: TransformersEngine, media: dict[str, Path]) -> None:
    with pytest.raises(CapabilityError, match="talker"):
        text_engine.generate(request("transcribe", media["speech_wav"], voice="Ethan"))


def test_task_modality_mismatch_fails_fast(text_engine: TransformersEngine, media: dict[str, Path]) -> None:
    calls = text_engine.generate_calls
    with pytest.raises(TaskInputError, match="does not accept audio"):
        text_engine.generate(request("ocr", media["speech_wav"]))
    with pytest.raises(TaskInputError, match="no audio track"):
        text_engine.generate(request("transcribe", media["video_silent"]))
    assert text_engine.generate_calls == calls


def test_thinking_variant_separates_reasoning(tiny_thinking: Path, media: dict[str, Path]) -> None:
    engine = TransformersEngine(EngineConfig(str(tiny_thinking)))
    assert engine.variant is Variant.THINKING
    result = engine.generate(request("transcribe", media["speech_wav"]))
    assert result.reasoning is not None and result.reasoning.strip()
    assert "<think>" not in result.text and "</think>" not in result.text
    with pytest.raises(CapabilityError, match="thinking checkpoint cannot produce speech"):
        engine.generate(request("transcribe", media["speech_wav"], voice="Ethan"))


def test_split_reasoning() -> None:
    assert split_reasoning("<think>\nweigh it</think>\n\nThe answer.", True) == ("weigh it", "The answer.")
    assert split_reasoning("still thinking", True) == ("still thinking", "")
    assert split_reasoning("plain caption", False) == (None, "plain caption")


def test_captioner_takes_audio_only(tiny_captioner: Path, media: dict[str, Path]) -> None:
    engine = TransformersEngine(EngineConfig(str(tiny_captioner)))
    assert engine.variant is Variant.CAPTIONER
    messages = conversation(request("caption_audio", media["tone_mp3"]), engine.variant).messages
    assert [c["type"] for c in messages[-1]["content"]] == ["audio"], "the captioner takes no text prompt"
    assert engine.generate(request("caption_audio", media["tone_mp3"])).text
    with pytest.raises(CapabilityError, match="audio only"):
        engine.generate(request("ask", media["image_png"], question="what?"))


def test_the_last_position_head_generates_what_the_full_head_does(
    text_engine: TransformersEngine, media: dict[str, Path]
) -> None:
    """The thinker's head runs on the last position only (a long prompt no longer makes logits for every
    position): greedy outputs equal those of the full head, alone and batched, for audio, image and video."""
    requests = [
        request("transcribe", media["speech_wav"], max_new_tokens=8),
        request("ocr", media["image_png"], max_new_tokens=8),
        request("describe_video", media["video_av"], max_new_tokens=8),
    ]
    text_engine.load()
    thinker = text_engine._model.thinker
    wrapped = thinker.lm_head
    assert type(wrapped).__name__ == "LastPositionHead"
    fast = [r.text for r in text_engine.generate_batch(requests)] + [text_engine.generate(requests[0]).text]
    thinker.lm_head = wrapped.head  # the full head, as transformers ships it
    try:
        full = [r.text for r in text_engine.generate_batch(requests)] + [text_engine.generate(requests[0]).text]
    finally:
        thinker.lm_head = wrapped
    assert fast == full and all(fast)


def test_an_answer_that_ends_with_its_end_token_finishes_by_stop(text_engine: TransformersEngine) -> None:
    """finish is "stop" when the model ended its answer and "length" when max_new_tokens cut it (OpenAI's
    finish_reason); the tiny model never ends on its own, so the decoder is given both kinds of token rows."""
    from models.transformers_backend import IM_END_ID

    text_engine.load()
    ended = text_engine._decode([100, 200, IM_END_ID, 300], 8)
    cut = text_engine._decode([100, 200, 300, 400], 4)
    assert ended[1:] == (2, "stop") and cut[1:] == (4, "length")


def test_a_thinker_worker_never_builds_the_talker(text_engine: TransformersEngine) -> None:
    """Without speech the checkpoint loads with enable_audio_output=False: no talker or code2wav module is built
    (on the real checkpoint, gigabytes never allocated), not built and then deleted."""
    text_engine.load()
    model = text_engine._model
    assert not model.has_talker and not hasattr(model, "talker") and not hasattr(model, "code2wav")


def test_on_gpus_the_checkpoint_loads_straight_to_the_devices() -> None:
    """accelerate's device_map places the weights as they load (no whole copy in host memory first); a slot's
    GPUs share the model, each holding at most max_memory."""
    assert load_kwargs("cpu", 0, with_talker=True) == {}
    assert load_kwargs("cpu", 0, with_talker=False) == {"enable_audio_output": False}
    assert load_kwargs("cuda:1", 40, with_talker=True) == {"device_map": {"": 1}, "max_memory": {1: "40GiB"}}
