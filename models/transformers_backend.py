"""The reference backend: Qwen3-Omni on Hugging Face transformers (CPU in tests, GPU in production).

Loaded lazily, once, under a lock; text requests that share sampling settings run in one generate() call; speech
runs alone through the talker."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from models.backend import EngineBackend
from models.engine import EngineConfig, GenerationRequest, GenerationResult, split_reasoning
from models.errors import TaskInputError
from models.prompting import conversation, video_processor_kwargs
from models.tasks import TaskParams, Voice
from models.variants import Variant

IM_END_ID = 151645
PAD_ID = 151643


def last_position_head(lm_head: Any) -> Any:
    """The thinker's output head, applied to the last position only. The thinker's forward (transformers 5.24)
    has no logits_to_keep, so a prompt's first step made logits for every position: 300 s of audio (3,900 tokens)
    times the 152,064-token vocabulary is 2.4 GB in float32 (a long video's 70k tokens, 21 GB in bfloat16), of
    which generation reads only the last row. The talker reads hidden states, not logits."""
    import torch

    class LastPositionHead(torch.nn.Module):
        def __init__(self, head: torch.nn.Module) -> None:
            super().__init__()
            self.head = head

        def forward(self, hidden: torch.Tensor) -> torch.Tensor:
            return self.head(hidden[:, -1:, :])

        @property
        def weight(self) -> torch.Tensor:  # tied-weight lookups still find the head's weight
            return self.head.weight  # type: ignore[no-any-return]

    return LastPositionHead(lm_head)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_kwargs(device: str, max_memory_gib: float, with_talker: bool) -> dict[str, Any]:
    """How the checkpoint loads: on a GPU straight to the device(s) with accelerate's `device_map` (never whole in
    host memory first: ~66 GiB for Instruct), a slot of several GPUs sharing the model (`max_memory` per GPU when
    set); without speech the talker is never built (`enable_audio_output=False`: its weights are skipped)."""
    kwargs: dict[str, Any] = {}
    if not with_talker:
        kwargs["enable_audio_output"] = False
    if device.startswith("cuda"):
        if ":" in device:
            gpus = [int(device.split(":", 1)[1])]
            kwargs["device_map"] = {"": gpus[0]}
        else:
            import torch

            gpus = list(range(torch.cuda.device_count()))
            kwargs["device_map"] = "auto" if len(gpus) > 1 else {"": 0}
        if max_memory_gib > 0:
            kwargs["max_memory"] = {gpu: f"{max_memory_gib:g}GiB" for gpu in gpus}
    return kwargs


class TransformersEngine(EngineBackend):
    """Qwen3OmniMoeForConditionalGeneration + Qwen3OmniMoeProcessor, loaded lazily, once, under a lock."""

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._model: Any = None
        self._processor: Any = None
        self.generate_calls = 0  # model.generate() calls made, for batching checks

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            import torch
            from transformers import Qwen3OmniMoeForConditionalGeneration, Qwen3OmniMoeProcessor

            device = resolve_device(self.config.device)
            dtype = self.config.dtype
            if dtype == "auto":
                dtype = "bfloat16" if device.startswith("cuda") else "float32"
            kwargs = load_kwargs(device, self.config.max_memory_gib, self.can_speak)
            model = Qwen3OmniMoeForConditionalGeneration.from_pretrained(
                self.config.model, dtype=getattr(torch, dtype), **kwargs
            )
            if self.can_speak and model.has_talker:
                # transformers bug: the talker reads audio_config from its own config for audio+vision input.
                model.talker.config.audio_config = model.config.thinker_config.audio_config
            elif model.has_talker:
                model.disable_talker()
            model.thinker.lm_head = last_position_head(model.thinker.lm_head)
            if "device_map" not in kwargs:
                model.to(device)
            model.eval()
            self._processor = Qwen3OmniMoeProcessor.from_pretrained(self.config.model)
            self._model = model

    def _inputs(self, requests: list[GenerationRequest], use_audio_in_video: bool) -> Any:
        texts: list[str] = []
        images: list[Any] = []
        videos: list[np.ndarray] = []
        audios: list[np.ndarray] = []
        audio_slots: list[int | None] = []
        for request in requests:
            chat = conversation(request, self._variant)
            texts.append(
                self._processor.apply_chat_template(
                    chat.messages,
                    add_generation_prompt=True,
                    tokenize=False,
                    enable_thinking=self._variant is Variant.THINKING,
                )
            )
            kinds = chat.media_kinds
            media = request.media
            if "image" in kinds:
                images.append(media.image)
            if "video" in kinds:
                videos.append(media.frames)  # type: ignore[arg-type]
                if use_audio_in_video:
                    audios.append(media.audio)  # type: ignore[arg-type]
                    audio_slots.append(len(videos) - 1)
            if "audio" in kinds:
                audios.append(media.audio)  # type: ignore[arg-type]
                audio_slots.append(None)
        kwargs: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True}
        if images:
            kwargs["images"] = images
        if videos:
            kwargs["videos"] = videos
            kwargs["videos_kwargs"] = video_processor_kwargs(self.config.limits)
        if audios:
            kwargs["audio"] = audios
        if use_audio_in_video:
            kwargs["load_audio_from_video"] = True
            kwargs["audio_from_video_indices"] = audio_slots
        return self._processor(**kwargs).to(self._model.device)

    def _generate_kwargs(self, params: TaskParams, max_new_tokens: int) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "thinker_max_new_tokens": min(max_new_tokens, self.config.max_new_tokens_cap),
            "thinker_do_sample": params.do_sample,
            "thinker_repetition_penalty": params.repetition_penalty,
        }
        if params.do_sample:
            kwargs.update(
                thinker_temperature=params.temperature, thinker_top_p=params.top_p, thinker_top_k=params.top_k
            )
        return kwargs

    def _decode(self, tokens: Any, limit: int) -> tuple[str, int, str]:
        """The answer's text, its token count, and why it ended: stop (an end token) or length (the limit)."""
        ids = [int(t) for t in tokens[:limit]]
        finish = "length"
        for stop in (IM_END_ID, PAD_ID):
            if stop in ids:
                ids, finish = ids[: ids.index(stop)], "stop"
        text = self._processor.tokenizer.decode(ids, skip_special_tokens=True)
        return text, len(ids), finish

    def _result(
        self, decoded: tuple[str, int, str], prompt_tokens: int, audio: np.ndarray | None = None, seconds: float = 0.0
    ) -> GenerationResult:
        text, tokens, finish = decoded
        reasoning, answer = split_reasoning(text, self._variant is Variant.THINKING)
        return GenerationResult(answer, reasoning, audio, tokens, seconds, prompt_tokens, finish)

    # -- generation -------------------------------------------------------------------------------
    def _generate_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        import torch

        try:
            return self._generate_groups(requests)
        except torch.OutOfMemoryError:
            if torch.cuda.is_available():  # hand the failed call's blocks back, or the retry with smaller
                torch.cuda.empty_cache()  # segments (and every other job) finds the memory still taken
            raise

    def _generate_groups(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Text-out requests that share sampling settings run in one generate() call; speech runs alone."""
        results: dict[int, GenerationResult] = {}
        groups: dict[tuple[Any, ...], list[int]] = {}
        for index, request in enumerate(requests):
            if request.wants_speech:
                results[index] = self._speak(request)
                continue
            use_audio = conversation(request, self._variant).use_audio_in_video
            groups.setdefault((request.params.sampling_key(), use_audio), []).append(index)
        for (_, use_audio), indices in groups.items():
            for start in range(0, len(indices), self.config.max_batch_size):
                chunk = indices[start : start + self.config.max_batch_size]
                for index, result in zip(chunk, self._run_text([requests[i] for i in chunk], use_audio), strict=True):
                    results[index] = result
        return [results[i] for i in range(len(requests))]

    def _run_text(self, requests: list[GenerationRequest], use_audio_in_video: bool) -> list[GenerationResult]:
        import torch

        limits = [min(r.params.max_new_tokens, self.config.max_new_tokens_cap) for r in requests]
        with self._run_lock, torch.inference_mode():
            started = time.perf_counter()
            inputs = self._inputs(requests, use_audio_in_video)
            output = self._model.generate(
                **inputs,
                return_audio=False,
                use_audio_in_video=use_audio_in_video,
                **self._generate_kwargs(requests[0].params, max(limits)),
            )
            self.generate_calls += 1
            held = time.perf_counter() - started
        sequences = output if isinstance(output, torch.Tensor) else output.sequences
        prompt_len = inputs["input_ids"].shape[1]
        results = []
        prompts = inputs["attention_mask"].sum(dim=1).tolist()  # left padding is not the prompt
        for row, limit in enumerate(limits):
            decoded = self._decode(sequences[row, prompt_len:], limit)
            results.append(self._result(decoded, int(prompts[row]), seconds=held / len(requests)))
        return results

    def _speak(self, request: GenerationRequest) -> GenerationResult:
        import torch

        voice = Voice.parse(request.params.voice or "")
        use_audio = conversation(request, self._variant).use_audio_in_video
        limit = min(request.params.max_new_tokens, self.config.max_new_tokens_cap)
        with self._run_lock, torch.inference_mode():
            started = time.perf_counter()
            inputs = self._inputs([request], use_audio)
            output = self._model.generate(
                **inputs,
                speaker=voice.value,
                return_audio=True,
                use_audio_in_video=use_audio,
                talker_max_new_tokens=self.config.talker_max_new_tokens,
                talker_do_sample=self.config.talker_do_sample,
                **self._generate_kwargs(request.params, limit),
            )
            self.generate_calls += 1
            held = time.perf_counter() - started
        if not isinstance(output, tuple):
            raise TaskInputError("the model returned no speech for this request")
        sequences, wav = output
        if isinstance(wav, list):
            wav = wav[0]
        audio = wav.reshape(-1).detach().float().cpu().numpy()
        prompt_len = inputs["input_ids"].shape[1]
        return self._result(self._decode(sequences[0, prompt_len:], limit), prompt_len, audio, held)
