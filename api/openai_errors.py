"""OpenAI's error shape, for the OpenAI-compatible routes (api.problems answers in it on their paths)."""

from __future__ import annotations

from typing import Any

OPENAI_PATHS = ("/v1/audio/", "/v1/chat/", "/v1/models")
_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


_DOCUMENTED = (
    (400, "Invalid request, or media that cannot be used"),
    (401, "API key missing, wrong or revoked"),
    (404, "Model or job not found"),
    (409, "The job was canceled"),
    (413, "Media over the upload limit"),
    (429, "Over a tenant limit: retry after Retry-After"),
    (502, "The job failed on the service's side"),
    (503, "Overloaded, or storage or database briefly unavailable"),
    (504, "The job is still running: poll GET /v1/jobs/{id}"),
)
OPENAI_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {
        "description": text,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OpenAIErrorBody"}}},
    }
    for code, text in _DOCUMENTED
}


def openai_error(status: int, kind: str, title: str, detail: str | None) -> tuple[int, dict[str, Any]]:
    """{"error": {"message", "type", "param", "code"}}; a request that is not valid is a 400 there (422 here)."""
    status = 400 if status == 422 else status
    kind_of = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return status, {"error": {"message": detail or title, "type": kind_of, "param": None, "code": kind}}
