"""vLLM backend (GPU only, its own image: infra/Dockerfile.vllm, infra/requirements-vllm.txt beside vllm==0.33.0):
the thinker through vLLM's offline API.

Same interface as the transformers backend, with validation, prompts and frame sizing from models.prompting.
`LLM` is not thread-safe across concurrent calls, so one thread owns its engine (models.stepping): every job's
prompts are added to vLLM's `LLMEngine` as they come and the thread steps it, so a prompt joins the running batch
at the next step rather than after a whole `generate` call. Plain vLLM serves the thinker (text out) only;
speech requests are refused (run the talker queue on a transformers worker, or vLLM-Omni's served stages)."""

from __future__ import annotations

import importlib.util
import os
import threading
from typing import Any

from models.backend import EngineBackend
from models.budget import encoder_budget, prompt_tokens
from models.engine import EngineConfig, GenerationRequest, GenerationResult, split_reasoning
from models.errors import BackendUnavailable, CapabilityError, PromptTooLong
from models.media import MediaKind
from models.prompting import conversation, validate_request, video_processor_kwargs
from models.variants import Variant

LIMIT_MM_PER_PROMPT = {"image": 1, "video": 1, "audio": 1}  # one media item per job (and its own audio track)


# vLLM 0.33 says a prompt is too long with VLLMValidationError (VLLMClientError(VLLMError(Exception)),
# vllm/exceptions.py), older releases with ValueError; the type alone also covers other refusals, so these
# messages tell the too-long ones apart (prompt over the context, or a media item over the encoder cache).
TOO_LONG_TYPES = ("VLLMValidationError", "ValueError")
TOO_LONG_MESSAGES = (
    "longer than the maximum model length",
    "maximum context length is",
    "exceeds the pre-allocated encoder cache size",
)


def too_long(exc: BaseException) -> bool:
    """Whether vLLM refused a request for its length (vLLM need not be importable to tell)."""
    kinds = {kind.__name__ for kind in type(exc).__mro__}
    return bool(kinds & set(TOO_LONG_TYPES)) and any(message in str(exc) for message in TOO_LONG_MESSAGES)


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def visible_gpus() -> int:
    """GPUs of this worker's slot (CUDA_VISIBLE_DEVICES, set by workers.gpu before anything loads)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    return len([g for g in visible.split(",") if g.strip()]) or 1


def engine_args(config: EngineConfig) -> dict[str, Any]:
    """vLLM's engine arguments from the settings (the model card's serving settings are the defaults)."""
    return {
        "max_model_len": config.max_model_len,
        # vLLM's encoder cache is at least this: the default for LLM (16,384 on H100/H200) refuses video items of
        # over ~114 s at 640x352; the planner caps a segment's video embeddings at the same number
        "max_num_batched_tokens": encoder_budget(config.max_model_len, config.max_num_batched_tokens),
        "max_num_seqs": config.max_num_seqs,
        "gpu_memory_utilization": config.gpu_memory_utilization,
        "tensor_parallel_size": config.tensor_parallel_size or visible_gpus(),
        "limit_mm_per_prompt": dict(LIMIT_MM_PER_PROMPT),
        "trust_remote_code": False,  # Qwen3-Omni is native in vLLM: no code from the checkpoint runs
        "seed": 1234,
    }


def expand_as_vllm(processor: Any, rendered: dict[str, Any]) -> Any:
    """The HF processor's output for one rendered prompt, called as vLLM's multimodal processor calls it (the
    media as keyword arguments, then every mm_processor_kwargs entry as a keyword argument): how the checks
    without vLLM (tests, infra/vllm_env_check.py) see what vLLM would expand."""
    data = rendered["multi_modal_data"]
    media: dict[str, Any] = {}
    if "image" in data:
        media["images"] = [data["image"]]
    if "video" in data:
        media["videos"] = [data["video"]]
    if "audio" in data:
        media["audio"] = [data["audio"][0]]
    kwargs = dict(rendered["mm_processor_kwargs"])
    if kwargs.get("use_audio_in_video") and hasattr(processor, "load_audio_from_video"):
        # transformers >= 5.21 names the video's own audio this way (vLLM's pin, <5.21, takes use_audio_in_video)
        kwargs.pop("use_audio_in_video")
        kwargs.update(load_audio_from_video=True, audio_from_video_indices=[0])
    return processor(text=[rendered["prompt"]], **media, **kwargs, return_tensors="pt")


class VllmEngine(EngineBackend):
    """Qwen3-Omni thinker on vLLM: `LLM.generate` with `multi_modal_data` and `mm_processor_kwargs`."""

    def __init__(self, config: EngineConfig) -> None:
        if not vllm_available():
            raise BackendUnavailable(
                "the vLLM backend runs in the vLLM image (infra/Dockerfile.vllm) on a GPU machine; this environment "
                "has no vllm package"
            )
        super().__init__(config)
        self.engine_args = engine_args(config)
        self._lock = threading.Lock()
        self._llm: Any = None
        self._processor: Any = None

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
        media = request.media
        if media.kind is MediaKind.VIDEO and media.frames is None:
            raise CapabilityError("video request has no decoded frames")
        seconds = max(media.end_s - media.start_s, 0.0)
        expected = prompt_tokens(media.info, self.config.limits, seconds)
        if expected + min(request.params.max_new_tokens, self.config.max_new_tokens_cap) > self.config.max_model_len:
            raise PromptTooLong(
                f"a {seconds:.0f} s segment is about {expected:.0f} prompt tokens; the model's "
                f"context is {self.config.max_model_len}"
            )

    def prompt(self, request: GenerationRequest) -> dict[str, Any]:
        """What vLLM takes for one request: the rendered chat, the media, and how the processor treats it."""
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
        # vLLM calls the HF processor with these as keyword arguments: the frame rate goes inside videos_kwargs
        # only (given twice, the processor refuses the call: seen with transformers 5.20 in the vLLM image).
        if not data:  # a text-only request
            return {"prompt": text}
        kwargs: dict[str, Any] = {"use_audio_in_video": use_audio}
        if "video" in kinds:
            kwargs["videos_kwargs"] = video_processor_kwargs(self.config.limits)
        return {"prompt": text, "multi_modal_data": data, "mm_processor_kwargs": kwargs}

    def sampling(self, request: GenerationRequest) -> Any:
        """vLLM's sampling parameters; each request reports once, when it finishes (as LLM.generate asks)."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        p = request.params
        limit = min(p.max_new_tokens, self.config.max_new_tokens_cap)
        final = RequestOutputKind.FINAL_ONLY
        if not p.do_sample:
            return SamplingParams(
                temperature=0.0, max_tokens=limit, repetition_penalty=p.repetition_penalty, output_kind=final
            )
        return SamplingParams(
            temperature=p.temperature,
            top_p=p.top_p,
            top_k=p.top_k,
            max_tokens=limit,
            repetition_penalty=p.repetition_penalty,
            output_kind=final,
        )

    def stepper(self) -> VllmStepper:
        """vLLM's engine, stepped by the one thread that owns it (models.stepping)."""
        return VllmStepper(self)

    def add_request(self, request_id: str, request: GenerationRequest) -> None:
        try:
            self._llm.llm_engine.add_request(request_id, self.prompt(request), self.sampling(request))
        except Exception as exc:
            if too_long(exc):
                raise PromptTooLong(f"the prompt is longer than the engine takes: {exc}") from exc
            raise

    def result_of(self, out: Any) -> GenerationResult:
        """One of vLLM's RequestOutputs as the engine interface returns it."""
        completion = out.outputs[0]
        reasoning, answer = split_reasoning(completion.text, self._variant is Variant.THINKING)
        return GenerationResult(
            answer,
            reasoning,
            None,
            len(completion.token_ids),
            prompt_tokens=len(out.prompt_token_ids or []),
            finish="length" if completion.finish_reason == "length" else "stop",
        )

    def _generate_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        try:
            outputs = self._llm.generate(
                [self.prompt(r) for r in requests], sampling_params=[self.sampling(r) for r in requests]
            )
        except Exception as exc:
            if too_long(exc):
                raise PromptTooLong(f"the prompt is longer than the engine takes: {exc}") from exc
            raise
        return [self.result_of(out) for out in outputs]


class VllmStepper:
    """`LLMEngine.add_request` and `step` (vLLM's offline engine loop, which `LLM.generate` runs to completion)."""

    def __init__(self, backend: VllmEngine) -> None:
        self.backend = backend
        self._unfinished = 0

    def add(self, request_id: str, request: GenerationRequest) -> None:
        self.backend.add_request(request_id, request)
        self._unfinished += 1

    def step(self) -> list[tuple[str, GenerationResult]]:
        finished = [out for out in self.backend._llm.llm_engine.step() if out.finished]
        self._unfinished -= len(finished)
        return [(out.request_id, self.backend.result_of(out)) for out in finished]

    def unfinished(self) -> int:
        return self._unfinished
