"""OpenAI's error shape, for the OpenAI-compatible routes (api.problems answers in it on their paths)."""

from __future__ import annotations

from typing import Any

OPENAI_PATHS = ("/v1/audio/", "/v1/chat/", "/v1/models")
_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


def openai_error(status: int, kind: str, title: str, detail: str | None) -> tuple[int, dict[str, Any]]:
    """{"error": {"message", "type", "param", "code"}}; a request that is not valid is a 400 there (422 here)."""
    status = 400 if status == 422 else status
    kind_of = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return status, {"error": {"message": detail or title, "type": kind_of, "param": None, "code": kind}}
