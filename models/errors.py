"""Typed failures of the engine. Each carries a human reason; core.jobs.failures maps each type to a job's
failure class."""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MediaError(EngineError):
    """The input file cannot be used: empty, corrupt, wrong type, too short or too long. Never retried."""


class TaskInputError(EngineError):
    """The task cannot run on this input or with these parameters (e.g. OCR on an audio file)."""


class CapabilityError(EngineError):
    """The loaded checkpoint cannot do what was asked (speech from Thinking, an image to Captioner)."""


class CoverageError(EngineError):
    """Planned segments do not cover the whole media duration."""


class BackendUnavailable(EngineError):
    """An optional backend (vLLM) is not installed or has no GPU."""


class PromptTooLong(EngineError):
    """The segment's prompt is longer than the model's context (max_model_len): retried with shorter segments."""


class EngineDown(Exception):
    """The engine could not load, or died (vLLM's EngineDeadError): no job's fault, and no later job can run in this
    process. The job goes back to the queue and the worker exits for its supervisor to start a fresh one."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
