"""Run by infra/vllm-env-check.sh inside the vLLM environment: the backend imports, and every task renders on
the tiny checkpoint's processor (the prompt vLLM gets, the media, the processor arguments, and the HF processor's
own expansion of them, as vLLM's multimodal processor calls it). Prints one line per task, then a summary."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import transformers
import vllm
from PIL import Image
from transformers import Qwen3OmniMoeProcessor

from models.aligner import ForcedAligner
from models.engine import EngineConfig, GenerationRequest
from models.fixtures.tiny import build
from models.fixtures.tiny_aligner import build_aligner
from models.media import DecodedMedia, MediaInfo, MediaKind, text_media
from models.tasks import CATALOGUE, get_task, parse_params
from models.transformers_backend import TransformersEngine
from models.variants import Variant
from models.vllm_backend import VllmEngine, engine_args, expand_as_vllm, too_long

EXTRA = {
    "translate": {"target_language": "de"},
    "ask": {"question": "What is it?"},
    "custom": {"prompt": "Hi."},
    "subtitles": {"target_language": "de", "text": "1. Good evening."},
}


def media_for(kind: MediaKind) -> DecodedMedia:
    if kind is MediaKind.TEXT:
        return text_media()
    audio = (0.1 * np.random.default_rng(0).standard_normal(16_000 * 3)).astype(np.float32)
    if kind is MediaKind.IMAGE:
        return DecodedMedia(MediaInfo(kind, 0.0, False, 320, 240), image=Image.new("RGB", (320, 240), "white"))
    if kind is MediaKind.VIDEO:
        frames = np.zeros((6, 224, 320, 3), dtype=np.uint8)
        return DecodedMedia(MediaInfo(kind, 3.0, True, 320, 240), audio=audio, frames=frames, end_s=3.0)
    return DecodedMedia(MediaInfo(kind, 3.0, True), audio=audio, end_s=3.0)


def main() -> int:
    print(f"python {sys.version.split()[0]}, vllm {vllm.__version__}, transformers {transformers.__version__}")
    model = build(Path(tempfile.mkdtemp()) / "tiny")
    config = EngineConfig(str(model), backend="vllm")
    engine = VllmEngine(config)  # not load(): that starts vllm.LLM on a GPU; the processor alone renders prompts
    engine._processor = Qwen3OmniMoeProcessor.from_pretrained(str(model))
    print("engine args:", engine_args(config))
    from vllm.exceptions import VLLMValidationError  # vLLM's own class: its too-long refusal maps to PromptTooLong

    refusal = VLLMValidationError("The decoder prompt (length 40000) is longer than the maximum model length of 32768.")
    assert too_long(refusal) and not too_long(VLLMValidationError("temperature must be non-negative"))
    rendered = 0
    for spec in CATALOGUE.values():
        for kind in sorted(spec.accepts, key=lambda k: k.value):
            params = parse_params(spec.name, {"max_new_tokens": 8, **EXTRA.get(spec.name.value, {})})
            request = GenerationRequest(spec, params, media_for(kind))
            try:
                engine.validate(request)
            except Exception as exc:  # a combination the task refuses (e.g. OCR on audio) is not rendered
                print(f"{spec.name.value:15s} {kind.value:5s} refused: {exc}")
                continue
            prompt = engine.prompt(request)
            sampling = engine.sampling(request)
            if kind is MediaKind.TEXT:  # a text-only request: the prompt alone
                assert set(prompt) == {"prompt"}, prompt
                print(f"{spec.name.value:15s} text  prompt={len(prompt['prompt']):4d} chars, no media")
                rendered += 1
                continue
            data = prompt["multi_modal_data"]
            expanded = expand_as_vllm(engine._processor, prompt)
            shapes = {k: (v.shape if hasattr(v, "shape") else type(v).__name__) for k, v in data.items()}
            shapes = {k: (v[0].shape if isinstance(v, tuple) else shapes[k]) for k, v in data.items()}
            print(
                f"{spec.name.value:15s} {kind.value:5s} prompt={len(prompt['prompt']):4d} chars, "
                f"tokens={len(expanded['input_ids'][0]):5d}, media={shapes}, "
                f"use_audio_in_video={prompt['mm_processor_kwargs']['use_audio_in_video']}, "
                f"max_tokens={sampling.max_tokens}"
            )
            rendered += 1
    transcript, words = run_on_cpu(model)
    print(f"transformers backend on this transformers: {transcript!r}; tiny aligner: {words} word times")
    print(f"rendered={rendered} variant={engine.variant.value} ok")
    return 0 if rendered and engine.variant is Variant.INSTRUCT and words else 1


def run_on_cpu(model: Path) -> tuple[str, int]:
    """models/ under vLLM's transformers: the transformers engine generates on the CPU (the path a talker or CPU
    worker takes), and the tiny forced aligner, built through the real classes, times the words."""
    spec = get_task("transcribe")
    engine = TransformersEngine(EngineConfig(str(model), device="cpu"))
    media = media_for(MediaKind.AUDIO)
    result = engine.generate(GenerationRequest(spec, parse_params(spec.name, {"max_new_tokens": 8}), media))
    aligner = ForcedAligner(str(build_aligner(model.parent / "tiny-aligner")), device="cpu")
    assert media.audio is not None
    alignment = aligner.align(media.audio, "one two three four")
    return result.text, len(alignment.times) if alignment else 0


if __name__ == "__main__":
    raise SystemExit(main())
