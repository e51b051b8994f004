"""Typed failures of the engine. Each carries a human reason; callers map the class to a job failure."""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""

    failure_class = "engine"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MediaError(EngineError):
    """The input file cannot be used: empty, corrupt, wrong type, too short or too long. Never retried."""

    failure_class = "media"


class TaskInputError(EngineError):
    """The task cannot run on this input or with these parameters (e.g. OCR on an audio file)."""

    failure_class = "invalid_input"


class CapabilityError(EngineError):
    """The loaded checkpoint cannot do what was asked (speech from Thinking, an image to Captioner)."""

    failure_class = "unsupported"


class CoverageError(EngineError):
    """Planned segments do not cover the whole media duration."""

    failure_class = "engine"


class BackendUnavailable(EngineError):
    """An optional backend (vLLM) is not installed or has no GPU."""

    failure_class = "unsupported"
