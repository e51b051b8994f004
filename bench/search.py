"""Search latency over 100,000 transcript segments (and 10,000) on Postgres (tsvector, GIN, websearch_to_tsquery)
and SQLite (FTS5): one tenant's 2,000 transcripts of 50 segments among other tenants' too (words Zipf-distributed
over a 20,000-word vocabulary, the queries' topic words among them), queried with words, phrases and boolean
queries, p50 and p99 over the query set. Last line: pg_p99_ms=... sqlite_p99_ms=... (goal:
under 50 ms at 10,000 segments)."""

from __future__ import annotations

import itertools
import random
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from core import migrate, search
from core.config import Settings
from core.db import make_engine
from core.jobs.rows import JobRequest, add_jobs, queued_job
from tests.support import postgres_database

WORDS = [
    "flood",
    "barrier",
    "river",
    "town",
    "bridge",
    "council",
    "harbour",
    "archive",
    "winter",
    "summer",
    "station",
    "engineers",
    "water",
    "wall",
    "boats",
    "village",
    "railway",
    "storm",
    "evening",
    "morning",
    "radio",
    "museum",
    "mill",
    "school",
    "market",
    "church",
    "farm",
    "road",
    "weather",
]
QUERIES = [
    "flood",
    '"flood barrier"',
    "river -town",
    "bridge OR harbour",
    '"evening radio" weather',
    "museum mill",
    "storm OR flood -boats",
    "railway",
]


VOCABULARY = [f"w{index}" for index in range(20_000)]  # everyday words, Zipf-distributed as speech is
ZIPF = list(itertools.accumulate(1 / (rank + 1) ** 1.1 for rank in range(len(VOCABULARY))))


def _word(rng: random.Random) -> str:
    """A word of a transcript: the topic words of the queries each in ~1% of words, the rest Zipf-distributed."""
    if rng.random() < 0.02:
        return rng.choice(WORDS)
    return rng.choices(VOCABULARY, cum_weights=ZIPF)[0]


def fill(url: str, segments: int) -> sessionmaker:  # type: ignore[type-arg]
    migrate.upgrade(url)
    engine = make_engine(url, Settings())
    sessions = sessionmaker(engine)
    rng = random.Random(1)
    sqlite = url.startswith("sqlite")
    config = "" if sqlite else ", config"
    cast = "" if sqlite else ", 'english'::regconfig"
    with sessions() as session:
        jobs = []
        for number in range((segments + 49) // 50):  # the jobs the segments belong to (Postgres keeps the key)
            job = queued_job(Settings(), JobRequest("alpha", "transcribe"), "file:///bench.wav")
            job.id = f"{number:032d}"
            jobs.append(job)
        add_jobs(session, jobs)
        session.commit()
        batch = []
        for index in range(segments):
            tenant = "alpha" if index % 5 else f"other{index % 7}"
            words = " ".join(_word(rng) for _ in range(rng.randint(8, 20)))
            batch.append(
                {
                    "tenant": tenant,
                    "job": f"{index // 50:032d}",
                    "segment": index % 50,
                    "start": index % 50 * 6.0,
                    "end": index % 50 * 6.0 + 6.0,
                    "text": words,
                }
            )
            if len(batch) == 5000 or index == segments - 1:
                session.execute(
                    text(
                        "INSERT INTO transcript_search (tenant, job_id, segment, start_s, end_s, speaker, "
                        f"text{config}) VALUES (:tenant, :job, :segment, :start, :end, NULL, :text{cast})"
                    ),
                    batch,
                )
                batch = []
        session.commit()
    return sessions


def latencies(sessions: sessionmaker, rounds: int = 25) -> tuple[float, float]:  # type: ignore[type-arg]
    timings = []
    with sessions() as session:
        for query in QUERIES:  # warm
            search.search(session, "alpha", query)
        for _ in range(rounds):
            for query in QUERIES:
                started = time.perf_counter()
                search.search(session, "alpha", query)
                timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    return statistics.median(timings), timings[int(len(timings) * 0.99) - 1]


def main() -> None:
    found = {}
    for count in (10_000, 100_000):
        with tempfile.TemporaryDirectory() as tmp:
            sqlite = fill(f"sqlite:///{Path(tmp) / 'search.db'}", count)
            found[("sqlite", count)] = latencies(sqlite)
        with postgres_database() as url:
            pg = fill(url, count)
            found[("pg", count)] = latencies(pg)
            pg.kw["bind"].dispose()
        for kind in ("pg", "sqlite"):
            p50, p99 = found[(kind, count)]
            print(f"{kind} {count} segments: p50 {p50:.1f} ms, p99 {p99:.1f} ms", flush=True)
    print(
        f"pg_p99_ms={found[('pg', 100_000)][1]:.1f} sqlite_p99_ms={found[('sqlite', 100_000)][1]:.1f} "
        f"pg_p50_ms={found[('pg', 100_000)][0]:.1f} sqlite_p50_ms={found[('sqlite', 100_000)][0]:.1f} "
        f"pg_10k_p99_ms={found[('pg', 10_000)][1]:.1f} sqlite_10k_p99_ms={found[('sqlite', 10_000)][1]:.1f}"
    )


if __name__ == "__main__":
    main()
