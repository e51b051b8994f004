"""The FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI

from api import problems
from api.routes import batches, health, jobs, tasks, uploads
from api.schemas import ProblemDetails


def create_app() -> FastAPI:
    app = FastAPI(
        title="omnimedia",
        version="0.1.0",
        description="Media archives to text and speech with Qwen3-Omni: uploads, jobs, results.",
    )
    problems.install(app)
    for module in (health, tasks, uploads, jobs, batches):
        app.include_router(module.router)
    original = app.openapi

    def openapi() -> dict:  # type: ignore[type-arg]
        schema = original()
        schema.setdefault("components", {}).setdefault("schemas", {})["ProblemDetails"] = (
            ProblemDetails.model_json_schema()
        )
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


app = create_app()
