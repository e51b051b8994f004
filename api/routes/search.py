"""Search across the caller's transcripts: GET /v1/search?q= (phrases in quotes, OR, -word)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import SessionDep, TenantDep
from api.problems import PROBLEM_RESPONSES
from core import search

router = APIRouter(prefix="/v1/search", tags=["search"], responses=PROBLEM_RESPONSES)


@router.get("")
def search_transcripts(
    session: SessionDep,
    tenant: TenantDep,
    q: Annotated[str, Query(min_length=1, max_length=500, description='e.g. "flood barrier" OR dam -river')],
    limit: Annotated[int, Query(ge=1, le=search.MAX_RESULTS)] = 20,
) -> dict[str, Any]:
    """The caller's transcript segments that best match, with the job, file, time, speaker and a snippet (HTML:
    the matched words in <mark>, the rest escaped)."""
    return {"object": "list", "query": q, "data": [hit.as_json() for hit in search.search(session, tenant, q, limit)]}
