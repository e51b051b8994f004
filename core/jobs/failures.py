"""Why a job failed: one enum, and one function that classifies an exception by its type (never its text)."""

from __future__ import annotations

import enum
import sys

from sqlalchemy.exc import InterfaceError, OperationalError

from core.storage import StorageError
from models.errors import (
    BackendUnavailable,
    CapabilityError,
    CoverageError,
    EngineError,
    MediaError,
    PromptTooLong,
    TaskInputError,
)


class FailureClass(str, enum.Enum):
    MEDIA = "media"  # the file cannot be used: never retried
    INVALID_INPUT = "invalid_input"  # the task cannot run on this input or with these parameters
    UNSUPPORTED = "unsupported"  # the loaded checkpoint or backend cannot do it
    ENGINE = "engine"  # the engine refused for a reason of its own (e.g. planned segments leave a gap)
    OUT_OF_MEMORY = "out_of_memory"  # retried with half-length segments
    TOO_LONG = "too_long"  # a segment's prompt over the model's context: retried with half-length segments
    TRANSIENT = "transient"  # storage, database or network: retried with backoff
    INTERNAL = "internal"  # a bug: retried, then failed with the error
    EXHAUSTED = "exhausted"  # attempts used up with no class recorded
    LOST = "lost"  # the worker or the message was lost too often

    @property
    def retried(self) -> bool:
        """Whether the runner tries again (up to the attempts cap) rather than failing at once."""
        return self in (FailureClass.TRANSIENT, FailureClass.INTERNAL, FailureClass.OUT_OF_MEMORY,
                        FailureClass.TOO_LONG)  # fmt: skip

    @property
    def smaller(self) -> bool:
        """Whether a retry cuts the media into shorter segments."""
        return self in (FailureClass.OUT_OF_MEMORY, FailureClass.TOO_LONG)


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    StorageError,
    OperationalError,
    InterfaceError,
    ConnectionError,
    TimeoutError,
)

_ENGINE_CLASSES: tuple[tuple[type[EngineError], FailureClass], ...] = (
    (MediaError, FailureClass.MEDIA),
    (TaskInputError, FailureClass.INVALID_INPUT),
    (CapabilityError, FailureClass.UNSUPPORTED),
    (BackendUnavailable, FailureClass.UNSUPPORTED),
    (CoverageError, FailureClass.ENGINE),
    (PromptTooLong, FailureClass.TOO_LONG),
)


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    torch = sys.modules.get("torch")  # only where the engine already imported it: the API never loads torch
    return torch is not None and isinstance(exc, torch.OutOfMemoryError)


def classify(exc: BaseException) -> FailureClass:
    """The failure class of an exception raised while running a job."""
    for error_type, failure_class in _ENGINE_CLASSES:
        if isinstance(exc, error_type):
            return failure_class
    if isinstance(exc, EngineError):
        return FailureClass.ENGINE
    if _is_out_of_memory(exc):
        return FailureClass.OUT_OF_MEMORY
    if isinstance(exc, TRANSIENT_ERRORS):
        return FailureClass.TRANSIENT
    return FailureClass.INTERNAL


# What a tenant is told for failures whose exception text is the service's business (SQL, hosts, S3 endpoints,
# server paths): the detail goes to the operators' log with the job id instead.
_PUBLIC_REASONS = {
    FailureClass.TRANSIENT: "storage or the database was briefly unavailable",
    FailureClass.INTERNAL: "an internal error stopped the job; the operators have the details",
    FailureClass.OUT_OF_MEMORY: "the model ran out of GPU memory",
    FailureClass.TOO_LONG: "a segment was longer than the model's context",
}


def public_reason(failure_class: FailureClass, exc: BaseException) -> str:
    """The failure reason shown to the tenant and sent in webhooks. Engine errors are written for the caller;
    the others are described by their class only."""
    if failure_class in _PUBLIC_REASONS:
        return _PUBLIC_REASONS[failure_class]
    return str(getattr(exc, "reason", "") or exc)
