"""The parts of the OpenAPI document FastAPI cannot derive from the route signatures: the job request as one
schema per task (so `ask` without `question` is invalid in the schema, not only at the server), the batch bodies,
and the shared problem+json schema."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from api.openai_chat_body import ChatRequest
from api.schemas import FORMATS_DOC, BatchFromFile, BatchFromPrefix, OpenAIErrorBody, ProblemDetails
from models.tasks import CATALOGUE

REF = "#/components/schemas/{model}"
INPUT = {
    "type": "string",
    "maxLength": 1100,
    "description": "An upload id, or s3://bucket/key (the tenant's own keys, or a granted bucket)",
    "pattern": r"^(upload:)?[0-9a-f]{32}$|^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/\S+$",
}
WEBHOOK_URL = {
    "type": "string",
    "format": "uri",
    "maxLength": 2048,
    "pattern": "^https?://",
    "description": "called when the job ends; signed with the POST /v1/webhooks/secret secret",
}


FORMATS = {
    "type": "array",
    "items": {"enum": ["json", "txt", "srt", "vtt", "rttm"]},
    "maxItems": 5,
    "description": FORMATS_DOC,
}


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON schema whose nested definitions are referred to in the components (see `components`)."""
    schema = model.model_json_schema(ref_template=REF)
    schema.pop("$defs", None)
    return schema


def job_request() -> dict[str, Any]:
    """POST /v1/jobs: one object schema per task, each with that task's parameters."""
    variants = []
    for spec in CATALOGUE.values():
        params = _schema(spec.params)
        variants.append(
            {
                "title": f"{spec.name.value} job",
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "task": {"const": spec.name.value},
                    "input": INPUT,
                    "params": params,
                    "webhook_url": WEBHOOK_URL,
                    "formats": FORMATS,
                },
                "required": ["task", "input", *(["params"] if params.get("required") else [])],
            }
        )
    return {"required": True, "content": {"application/json": {"schema": {"oneOf": variants}}}}


def batch_request() -> dict[str, Any]:
    """POST /v1/batches: JSONL lines (also accepted as text/plain), or a prefix / file reference as JSON."""
    lines = {"type": "string", "description": "one job request per line (OpenAI Batch format or the short form)"}
    return {
        "required": True,
        "content": {
            "application/jsonl": {"schema": lines},
            "text/plain": {"schema": lines},
            "application/json": {
                "schema": {
                    "oneOf": [{"$ref": REF.format(model=model.__name__)} for model in (BatchFromPrefix, BatchFromFile)]
                }
            },
        },
    }


def components() -> dict[str, Any]:
    """Schemas the documents above refer to, and ProblemDetails for every error response."""
    found: dict[str, Any] = {}
    own: list[type[BaseModel]] = [BatchFromPrefix, BatchFromFile, ProblemDetails, OpenAIErrorBody, ChatRequest]
    for model in [spec.params for spec in CATALOGUE.values()] + own:
        found.update(model.model_json_schema(ref_template=REF).get("$defs", {}))
    return {**found, **{model.__name__: _schema(model) for model in own}}


def upload_request() -> dict[str, Any]:
    """POST /v1/uploads: one non-empty file."""
    file = {"type": "string", "format": "binary", "minLength": 1, "description": "the media file (not empty)"}
    form = {"type": "object", "properties": {"file": file}, "required": ["file"]}
    return {"required": True, "content": {"multipart/form-data": {"schema": form}}}


def chat_request() -> dict[str, Any]:
    """POST /v1/chat/completions: OpenAI's chat request with typed content parts (read by api.openai_chat_body)."""
    return {"required": True, "content": {"application/json": {"schema": {"$ref": REF.format(model="ChatRequest")}}}}
