"""vLLM backend (GPU only, optional extra `pip install .[vllm]`): the thinker through vLLM's offline API.

Same interface as the transformers backend, with validation and prompts from models.prompting; vLLM's
continuous batching replaces our batch grouping. Plain vLLM serves the thinker (text out) only; speech requests
are refused with a clear error (use the transformers backend on a talker worker, or vLLM-Omni's served stages)."""

from __future__ import annotations

import importlib.util
import threading
from typing import Any

from models.engine import EngineConfig, GenerationRequest, GenerationResult, split_reasoning
from models.errors import BackendUnavailable, CapabilityError
from models.media import VIDEO_FPS, MediaKind
from models.prompting import conversation, validate_request
from models.variants import Variant, detect_variant


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


# The model card's serving settings for one 80 GB GPU.
DEFAULT_ENGINE_ARGS: dict[str, Any] = {
    "max_model_len": 32768,
    "max_num_seqs": 8,
    "gpu_memory_utilization": 0.95,
    "limit_mm_per_prompt": {"image": 3, "video": 3, "audio": 3},
    "tensor_parallel_size": 1,
    "trust_remote_code": True,
    "seed": 1234,
}


class VllmEngine:
    """Qwen3-Omni thinker on vLLM: `LLM.generate` with `multi_modal_data` and `mm_processor_kwargs`."""

    def __init__(self, config: EngineConfig, engine_args: dict[str, Any] | None = None) -> None:
        if not vllm_available():
            raise BackendUnavailable("the vLLM backend needs `pip install omnimedia[vllm]` on a GPU machine")
        self.config = config
        self.engine_args = {**DEFAULT_ENGINE_ARGS, **(engine_args or {})}
        self._variant = config.variant or detect_variant(config.model)
        self._lock = threading.Lock()
        self._llm: Any = None
        self._processor: Any = None

    @property
    def variant(self) -> Variant:
        return self._variant

    @property
    def can_speak(self) -> bool:
        return False

    def load(self) -> None:
        with self._lock:
            if self._llm is not None:
                return
            from transformers import Qwen3OmniMoeProcessor
            from vllm import LLM

            self._processor = Qwen3OmniMoeProcessor.from_pretrained(self.config.model)
            self._llm = LLM(model=self.config.model, **self.engine_args)

    def validate(self, request: GenerationRequest) -> None:
        if request.wants_speech:
            raise CapabilityError("the vLLM backend serves text only; speech jobs need a talker worker")
        validate_request(request, self._variant, talker_loaded=False)

    def _prompt(self, request: GenerationRequest) -> dict[str, Any]:
        chat = conversation(request, self._variant)
        use_audio = chat.use_audio_in_video
        text = self._processor.apply_chat_template(
            chat.messages,
            add_generation_prompt=True,
            tokenize=False,
            enable_thinking=self._variant is Variant.THINKING,
        )
        media = request.media
        data: dict[str, Any] = {}
        kinds = chat.media_kinds
        if "image" in kinds:
            data["image"] = media.image
        if "video" in kinds:
            data["video"] = media.frames
            if use_audio:
                data["audio"] = (media.audio, 16_000)
        if "audio" in kinds:
            data["audio"] = (media.audio, 16_000)
        return {
            "prompt": text,
            "multi_modal_data": data,
            "mm_processor_kwargs": {"use_audio_in_video": use_audio, "fps": VIDEO_FPS},
        }

    def _sampling(self, request: GenerationRequest) -> Any:
        from vllm import SamplingParams

        p = request.params
        limit = min(p.max_new_tokens, self.config.max_new_tokens_cap)
        if not p.do_sample:
            return SamplingParams(temperature=0.0, max_tokens=limit, repetition_penalty=p.repetition_penalty)
        return SamplingParams(
            temperature=p.temperature, top_p=p.top_p, top_k=p.top_k, max_tokens=limit,
            repetition_penalty=p.repetition_penalty,
        )  # fmt: skip

    def generate(self, request: GenerationRequest) -> GenerationResult:
        return self.generate_batch([request])[0]

    def generate_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        for request in requests:
            self.validate(request)
            if request.media.kind is MediaKind.VIDEO and request.media.frames is None:
                raise CapabilityError("video request has no decoded frames")
        self.load()
        outputs = self._llm.generate(
            [self._prompt(r) for r in requests], sampling_params=[self._sampling(r) for r in requests]
        )
        results = []
        for out in outputs:
            completion = out.outputs[0]
            reasoning, answer = split_reasoning(completion.text, self._variant is Variant.THINKING)
            results.append(GenerationResult(answer, reasoning, None, len(completion.token_ids)))
        return results
