"""The engine interface every caller uses, and the plain data it takes and returns.

Backends: `models.transformers_backend` (reference, CPU or GPU) and `models.vllm_backend` (GPU, optional extra).
`models.loader.load_engine` builds the one engine of a process."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from models.media import DecodedMedia, MediaLimits
from models.tasks import TaskParams, TaskSpec
from models.variants import Variant

TALKER_SAMPLE_RATE = 24_000


@dataclass(frozen=True)
class EngineConfig:
    """How to load the model; built from the service settings."""

    model: str
    backend: str = "transformers"  # transformers | vllm
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    enable_talker: bool = False
    variant: Variant | None = None  # None: read from the checkpoint
    max_batch_size: int = 16
    batch_max_wait_ms: float = 0.0  # > 0: merge concurrent requests across jobs (transformers backend)
    max_new_tokens_cap: int = 8192
    talker_max_new_tokens: int = 4096
    talker_do_sample: bool = True  # the model card samples the talker; greedy makes speech reproducible
    limits: MediaLimits = field(default_factory=MediaLimits)
    max_model_len: int = 32768  # the context a prompt must fit (segments are planned to: models.budget)
    # vLLM only: the engine's arguments (tensor parallel size 0: every GPU visible to the worker's slot).
    tensor_parallel_size: int = 0
    gpu_memory_utilization: float = 0.90
    max_num_seqs: int = 8
    max_num_batched_tokens: int = 0  # 0: max_model_len (vLLM's default, 16,384, refuses long video items)
    segments_in_flight: int = 0  # one job's segments at once (0: max_num_seqs for vLLM, else 1)
    max_memory_gib: float = 0.0  # transformers on GPUs: the most each GPU of the slot holds (0: accelerate's choice)

    def segments_per_job(self) -> int:
        """A continuous-batching engine (vLLM) is kept full by a long job's segments together; the transformers
        engine runs one at a time (its batches come from several jobs)."""
        if self.segments_in_flight > 0:
            return self.segments_in_flight
        return self.max_num_seqs if self.backend == "vllm" else 1

    def segments_per_process(self) -> int:
        """Segments decoded or in the engine at once in a process (0: no bound but the worker's jobs): vLLM's
        running batch and two being decoded, so many jobs' segments never hold more decoded media than that."""
        return self.max_num_seqs + 2 if self.backend == "vllm" else 0


@dataclass
class GenerationRequest:
    task: TaskSpec
    params: TaskParams
    media: DecodedMedia

    @property
    def wants_speech(self) -> bool:
        return self.params.voice is not None


@dataclass
class GenerationResult:
    text: str
    reasoning: str | None = None
    audio: np.ndarray | None = None  # float32 mono at TALKER_SAMPLE_RATE
    new_tokens: int = 0
    engine_seconds: float = 0.0  # this request's share of the time its generate() call held the model
    prompt_tokens: int = 0  # the prompt as the model saw it, media placeholders expanded
    finish: str = "stop"  # stop | length (the answer reached max_new_tokens)


class Engine(Protocol):
    """What workers call; the transformers and vLLM backends (and the cross-job batcher) provide it."""

    @property
    def variant(self) -> Variant: ...

    @property
    def can_speak(self) -> bool: ...

    def load(self) -> None: ...

    def validate(self, request: GenerationRequest) -> None: ...

    def generate(self, request: GenerationRequest) -> GenerationResult: ...

    def generate_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult]: ...


_THINK = re.compile(r"^\s*(?:<think>)?(.*?)</think>(.*)$", re.DOTALL)


def split_reasoning(text: str, thinking: bool) -> tuple[str | None, str]:
    """Separate a Thinking model's <think>...</think> reasoning from its answer."""
    match = _THINK.match(text)
    if match:
        return match.group(1).strip(), match.group(2).strip()
    if thinking:  # reasoning never closed (token budget ran out): there is no answer yet
        return text.replace("<think>", "").strip(), ""
    return None, text.strip()
