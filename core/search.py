"""Search across a tenant's transcripts: phrase and boolean queries (web search syntax: "a phrase", OR, -word)
over every segment of every finished transcript, with the job, its file, the time, the speaker and a highlighted
snippet. Segments are indexed in the transaction that finishes their job (core.jobs.finished), never by a scan.

Postgres: a tsvector per segment in the job's language configuration (english, german, ...; simple otherwise)
under a GIN index, queried with websearch_to_tsquery. SQLite (the embedded default): FTS5, the same syntax
translated (every word quoted, so no query is FTS5 syntax of its own)."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from core.schema import Job, Upload

MARK_OPEN, MARK_CLOSE = "\x02", "\x03"  # highlight sentinels: the text is escaped, then they become <mark>
MAX_RESULTS = 100
CONFIGS = {
    "en": "english",
    "de": "german",
    "fr": "french",
    "es": "spanish",
    "it": "italian",
    "pt": "portuguese",
    "nl": "dutch",
    "ru": "russian",
    "sv": "swedish",
    "da": "danish",
    "fi": "finnish",
    "no": "norwegian",
    "hu": "hungarian",
    "ro": "romanian",
    "tr": "turkish",
}
# The query in each configuration, as constants: the GIN index serves each arm (a query parsed in the row's own
# configuration, row by row, could not use it: 100,000 segments took 200 ms).
_PG_MATCH = " OR ".join(
    f"(config = '{name}'::regconfig AND tsv @@ websearch_to_tsquery('{name}', :query))"
    for name in sorted({*CONFIGS.values(), "simple"})
)
_QUERY_TOKEN = re.compile(r'(-?)"([^"]*)"|(\S+)')


@dataclass(frozen=True)
class Hit:
    job_id: str
    file_name: str | None
    start: float
    end: float
    speaker: str | None
    snippet: str  # HTML: the matched words in <mark>, everything else escaped

    def as_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "file_name": self.file_name,
            "start": self.start,
            "end": self.end,
            "speaker": self.speaker,
            "snippet": self.snippet,
        }


def config_for(language: str | None) -> str:
    return CONFIGS.get((language or "").split("-")[0].lower(), "simple")


def index_job(session: Session, job: Job) -> None:
    """Index a finished transcript's segments (replacing any earlier index of the job), in the caller's
    transaction."""
    result = job.result or {}
    if not result.get("segments") or job.task not in ("transcribe", "translate"):
        return
    sqlite = session.get_bind().dialect.name == "sqlite"
    session.execute(text("DELETE FROM transcript_search WHERE job_id = :job"), {"job": job.id})
    rows = [
        {
            "tenant": job.tenant,
            "job": job.id,
            "segment": index,
            "start": float(s["start"]),
            "end": float(s["end"]),
            "speaker": s.get("speaker"),
            "text": s["text"],
            "config": config_for(result.get("language")),
        }
        for index, s in enumerate(result["segments"])
        if (s.get("text") or "").strip()
    ]
    if not rows:
        return
    columns = "tenant, job_id, segment, start_s, end_s, speaker, text"
    values = ":tenant, :job, :segment, :start, :end, :speaker, :text"
    if not sqlite:
        columns, values = columns + ", config", values + ", CAST(:config AS regconfig)"
    session.execute(text(f"INSERT INTO transcript_search ({columns}) VALUES ({values})"), rows)


def search(session: Session, tenant: str, query: str, limit: int = 20) -> list[Hit]:
    """The tenant's best-matching segments for a web-search-style query."""
    limit = max(1, min(limit, MAX_RESULTS))
    if not query.strip():
        return []
    if session.get_bind().dialect.name == "sqlite":
        match = fts5_query(query)
        if not match:
            return []
        rows = session.execute(
            text(
                "SELECT job_id, start_s, end_s, speaker, "
                f"snippet(transcript_search, 0, '{MARK_OPEN}', '{MARK_CLOSE}', '…', 24) "
                "FROM transcript_search WHERE transcript_search MATCH :q AND tenant = :tenant "
                "ORDER BY rank LIMIT :limit"
            ),
            {"q": match, "tenant": tenant, "limit": limit},
        ).all()
    else:
        rows = session.execute(
            text(
                "SELECT job_id, start_s, end_s, speaker, "
                "ts_headline(config, text, websearch_to_tsquery(config, :query), :options) "
                f"FROM transcript_search WHERE tenant = :tenant AND ({_PG_MATCH}) "
                "ORDER BY ts_rank(tsv, websearch_to_tsquery(config, :query)) DESC, job_id, segment LIMIT :limit"
            ),
            {
                "query": query,
                "tenant": tenant,
                "limit": limit,
                "options": f"StartSel={MARK_OPEN}, StopSel={MARK_CLOSE}, MaxWords=24, MinWords=8",
            },
        ).all()
    names = _file_names(session, {row[0] for row in rows})
    return [Hit(job, names.get(job), float(a), float(b), who, _highlight(snippet)) for job, a, b, who, snippet in rows]


def _highlight(snippet: str) -> str:
    return html.escape(snippet).replace(MARK_OPEN, "<mark>").replace(MARK_CLOSE, "</mark>")


def _file_names(session: Session, job_ids: set[str]) -> dict[str, str | None]:
    if not job_ids:
        return {}
    rows = session.execute(
        select(Job.id, Job.input_ref, Upload.filename)
        .outerjoin(Upload, Upload.id == Job.upload_id)
        .where(Job.id.in_(job_ids))
    ).all()
    return {job_id: filename or input_ref.rsplit("/", 1)[-1] for job_id, input_ref, filename in rows}


def fts5_query(query: str) -> str:
    """Web search syntax as FTS5: "a phrase" stays a phrase, OR stays OR, -word is NOT word, every other word is
    required; every term is quoted, so nothing in a query is FTS5 syntax of its own."""
    terms: list[str] = []
    for negated, phrase, word in _QUERY_TOKEN.findall(query):
        if word.upper() == "OR":
            if terms and terms[-1] != "OR":
                terms.append("OR")
            continue
        negate = negated == "-" or (word.startswith("-") and len(word) > 1)
        body = phrase if phrase else word.lstrip("-")
        body = " ".join(re.findall(r"\w+", body))
        if not body:
            continue
        quoted = '"' + body.replace('"', "") + '"'
        terms.append(f"NOT {quoted}" if negate else quoted)
    while terms and terms[-1] == "OR":
        terms.pop()
    if terms and terms[0].startswith("NOT "):  # FTS5 needs something to subtract from
        return ""
    return " ".join(terms)
