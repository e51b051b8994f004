"""Why a job failed: one function that classifies an exception by its type (never its text) into the one enum,
FailureClass (core.states, beside the other values the database stores)."""

from __future__ import annotations

import sys

from sqlalchemy.exc import InterfaceError, OperationalError

from core.states import FailureClass
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
