"""Look and fix: signed, expiring review links to a tenant's own job, and corrections kept as revisions.

A review link carries (tenant, job, expiry, who issued it) signed with a key derived from the service's secret key
(core.sealed.signing_key): no row to look up, nothing to revoke but the key, and an altered, expired or foreign
link reads as no link at all. The machine's output is revision 0 (the job's own `result`, never overwritten); each
save is a new revision holding the whole revised result, who, when and what changed, made on the revision it was
edited from: a save on an older revision (two tabs) is refused, not merged; an approved transcript is locked."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core import quality
from core.config import Settings
from core.errors import Refusal, Refused
from core.jobs.transcript import cues_of, latest_result
from core.schema import Job, TranscriptRevision, utcnow
from core.sealed import signing_key
from models.captions import TimedText, clean_text, join_text

LINK_PURPOSE = "omnimedia review link v1"
MAX_TOKEN_CHARS = 1000


@dataclass(frozen=True)
class ReviewLink:
    tenant: str
    job_id: str
    expires_at: datetime
    issued_by: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_link(settings: Settings, tenant: str, job_id: str, ttl_s: float, issued_by: str) -> tuple[str, datetime]:
    """A token for the review page of `job_id`, valid `ttl_s` seconds."""
    expires = int(time.time() + ttl_s)
    body = _b64(json.dumps({"t": tenant, "j": job_id, "e": expires, "by": issued_by[:100]}).encode())
    signature = hmac.new(signing_key(LINK_PURPOSE, settings), body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(signature)}", datetime.fromtimestamp(expires, UTC)


def read_link(settings: Settings, token: str) -> ReviewLink | None:
    """The link a token stands for, or None: malformed, altered, signed with another key, or expired."""
    if len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
        return None
    body, signature = token.split(".")
    expected = hmac.new(signing_key(LINK_PURPOSE, settings), body.encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(expected, _unb64(signature)):
            return None
        fields = json.loads(_unb64(body))
        link = ReviewLink(
            str(fields["t"]), str(fields["j"]), datetime.fromtimestamp(int(fields["e"]), UTC), fields["by"]
        )
    except (binascii.Error, ValueError, KeyError, TypeError):
        return None
    return link if link.expires_at.timestamp() > time.time() else None


# -- revisions -----------------------------------------------------------------------------------------------------


class CueEdit(BaseModel):
    """A change to one cue of the revision edited from: its text, its times, or both."""

    index: int = Field(ge=0)
    text: str | None = Field(default=None, max_length=2000)
    start: float | None = Field(default=None, ge=0)
    end: float | None = Field(default=None, ge=0)


class RevisionRequest(BaseModel):
    """A save: the revision it was edited from (`base`), the cue edits, speaker renames (label -> name)."""

    base: int = Field(ge=0)
    edits: list[CueEdit] = Field(default_factory=list, max_length=500)
    speakers: dict[str, str] = Field(default_factory=dict, max_length=50)
    author: str | None = Field(default=None, max_length=100)


def speech_pauses(job: Job) -> list[tuple[float, float]] | None:
    """Where the job's plan heard no speech (None where the plan did not decode the file)."""
    plan = job.plan or {}
    if not plan.get("decoded"):
        return None
    return [(float(a), float(b)) for a, b in plan.get("pauses", [])]


def findings(job: Job, result: dict[str, Any]) -> list[dict[str, Any]]:
    if result.get("media_kind") == "image":
        return []
    return quality.check_cues(cues_of(result), speech_pauses(job))


def revise(session: Session, job: Job, request: RevisionRequest, author: str) -> TranscriptRevision:
    """Save a revision made on `request.base`; refused when the transcript is approved or has moved on since."""
    if job.approved_at is not None:
        raise Refused(Refusal.TRANSCRIPT_LOCKED, f"approved by {job.approved_by}: the transcript is locked")
    if request.base != job.revision:
        raise _conflict(session, job, request.base)
    result = latest_result(session, job)
    cues, changes = _edited(cues_of(result), request.edits, float(result.get("duration_s") or 0.0))
    renames, renamed = _renames(result, request.speakers)
    changes += renamed
    if not changes:
        raise Refused(Refusal.INVALID_INPUT, "nothing changed")
    number = request.base + 1
    revised = _revised(job, result, cues, renames, number)
    moved = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.revision == request.base, Job.approved_at.is_(None))
        .values(revision=number)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]  # another save won the race
        session.rollback()
        raise _conflict(session, job, request.base)
    row = TranscriptRevision(
        job_id=job.id, number=number, author=(request.author or author)[:200], changes=changes, result=revised
    )
    session.add(row)
    session.commit()
    return row


def approve(session: Session, job: Job, by: str) -> bool:
    """Lock the transcript at its latest revision; False when it already was."""
    done = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.approved_at.is_(None))
        .values(approved_at=utcnow(), approved_by=by[:200])
    )
    session.commit()
    return bool(done.rowcount)  # type: ignore[attr-defined]


def _conflict(session: Session, job: Job, base: int) -> Refused:
    session.refresh(job)
    latest = session.scalar(
        select(TranscriptRevision)
        .where(TranscriptRevision.job_id == job.id)
        .order_by(TranscriptRevision.number.desc())
        .limit(1)
    )
    who = f" by {latest.author} at {latest.created_at:%H:%M:%S}" if latest is not None else ""
    return Refused(
        Refusal.REVISION_CONFLICT,
        f"this edit was made on revision {base}, but revision {job.revision} was saved since{who}: "
        "reload and edit again",
        latest_revision=job.revision,
    )


def _edited(cues: list[TimedText], edits: list[CueEdit], duration_s: float) -> tuple[list[TimedText], list[Any]]:
    changes: list[dict[str, Any]] = []
    out = list(cues)
    for edit in edits:
        if edit.index >= len(cues):
            raise Refused(Refusal.INVALID_INPUT, f"there is no cue {edit.index} (the revision has {len(cues)})")
        cue = cues[edit.index]
        start = cue.start if edit.start is None else round(edit.start, 3)
        end = cue.end if edit.end is None else round(edit.end, 3)
        if not start < end or (duration_s and end > duration_s + 0.5):
            raise Refused(
                Refusal.INVALID_INPUT, f"cue {edit.index}: {start:.2f}-{end:.2f} s is not a span of the media"
            )
        text = cue.text if edit.text is None else edit.text.strip()
        words = cue.words
        if text != cue.text:
            words = _spread(text, start, end, cue.speaker)
            changes.append({"cue": edit.index, "field": "text", "before": cue.text, "after": text})
        elif (start, end) != (cue.start, cue.end):
            words = tuple(_moved(w, cue, start, end) for w in cue.words)
        if (start, end) != (cue.start, cue.end):
            changes.append({"cue": edit.index, "field": "times", "before": [cue.start, cue.end], "after": [start, end]})
        out[edit.index] = TimedText(start, end, text, words, cue.speaker)
    return [c for c in out if c.text], changes


def _spread(text: str, start: float, end: float, speaker: str | None) -> tuple[Any, ...]:
    """An edited cue's words, sharing its span by length (an edit has no word times of its own)."""
    from models.timing import Word

    tokens = text.split()  # as typed: the page escapes it, and every caption file cleans it when rendered
    total = sum(len(t) for t in tokens) or 1
    words, at = [], start
    for token in tokens:
        length = (end - start) * len(token) / total
        words.append(Word(round(at, 3), round(at + length, 3), token, speaker))
        at += length
    return tuple(words)


def _moved(word: Any, cue: TimedText, start: float, end: float) -> Any:
    from dataclasses import replace

    scale = (end - start) / max(cue.end - cue.start, 1e-6)
    return replace(
        word,
        start=round(start + (word.start - cue.start) * scale, 3),
        end=round(start + (word.end - cue.start) * scale, 3),
    )


def _renames(result: dict[str, Any], asked: dict[str, str]) -> tuple[dict[str, str], list[Any]]:
    known = {s["label"] for s in result.get("speakers", [])}
    renames, changes = {}, []
    for label, name in asked.items():
        clean = clean_text(name)[:64]
        if label not in known:
            raise Refused(Refusal.INVALID_INPUT, f"there is no speaker {label!r} in this transcript")
        if not clean or clean in known - {label}:
            raise Refused(Refusal.INVALID_INPUT, f"{name!r} is empty or another speaker's name")
        if clean != label:
            renames[label] = clean
            changes.append({"speaker": label, "field": "name", "before": label, "after": clean})
    return renames, changes


def _revised(
    job: Job, result: dict[str, Any], cues: list[TimedText], renames: dict[str, str], number: int
) -> dict[str, Any]:
    def who(label: str | None) -> str | None:
        return renames.get(label, label) if label is not None else None

    segments = []
    for cue in cues:
        segment: dict[str, Any] = {"start": cue.start, "end": cue.end, "text": cue.text.replace("\n", " ")}
        if cue.speaker is not None:
            segment["speaker"] = who(cue.speaker)
        if cue.words:
            segment["words"] = [
                {**w.as_json(), **({"speaker": who(w.speaker)} if w.speaker else {})} for w in cue.words
            ]
        segments.append(segment)
    revised = {**result, "segments": segments, "text": join_text(cues).replace("\n", " "), "revision": number}
    if "words" in result:
        revised["words"] = [w for s in segments for w in s.get("words", [])]
    if "speakers" in result:
        revised["speakers"] = [{**s, "label": who(s["label"])} for s in result["speakers"]]
        revised["speaker_turns"] = [[a, b, who(label)] for a, b, label in result.get("speaker_turns", [])]
    revised["quality"] = quality.counts(findings(job, revised))
    return revised
