"""A finished job's transcript as people see it: its latest revision (the machine's output is revision 0, the job's
own result) and the cues a viewer sees of it (the same shaping every caption file gets)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.jobs.outputs import timed_segments
from core.schema import Job, TranscriptRevision
from models.captions import TimedText, shape_cues


def latest_result(session: Session, job: Job) -> dict[str, Any]:
    """The job's transcript as its latest revision has it (the machine's output while there is none)."""
    found = result_at(session, job, job.revision)
    assert found is not None
    return found


def result_at(session: Session, job: Job, number: int) -> dict[str, Any] | None:
    if number == 0:
        return job.result
    query = select(TranscriptRevision.result).where(
        TranscriptRevision.job_id == job.id, TranscriptRevision.number == number
    )
    return session.scalar(query)


def revisions(session: Session, job: Job) -> list[TranscriptRevision]:
    query = select(TranscriptRevision).where(TranscriptRevision.job_id == job.id).order_by(TranscriptRevision.number)
    return list(session.scalars(query))


def cues_of(result: dict[str, Any]) -> list[TimedText]:
    """The cues a viewer sees (and the review page lists): the same shaping every caption file gets."""
    return shape_cues(timed_segments(result))
