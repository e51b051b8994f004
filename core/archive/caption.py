"""Bulk archive captioning on the embedded default: walk, deduplicate, resume, run with prefetch, export.

Files are tracked by content sha256 + task + params: a rerun reuses every finished job, resumes interrupted
ones from their last finished segment, and identical content is processed once. Outputs mirror the source
layout under the output folder (`talk.mp4` -> `talk.srt`, `talk.vtt`, `talk.json`) with a `manifest.jsonl`."""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core import intake
from core.archive.walk import ArchiveEntry, walk
from core.config import Settings
from core.jobs import machine
from core.jobs.machine import Transition
from core.jobs.outputs import formats_for, render
from core.jobs.runner import JobRunner, RunStatus, run_until_settled
from core.jobs.tracks import track_of
from core.report import ReportLine, build_report, report_html
from core.schema import LOCAL_TENANT, Job
from core.states import FailureClass, JobState
from core.storage import Storage
from models.tasks import get_task, parse_params

FORMATS = ("srt", "vtt", "json", "txt", "rttm")  # rttm: written for diarized runs (--speakers)


@dataclass
class FileOutcome:
    path: str
    sha256: str | None
    state: str  # succeeded | failed | skipped | canceled | pending
    duration_s: float | None = None
    outputs: list[str] = field(default_factory=list)
    error: str | None = None
    job_id: str | None = None
    reused: bool = False  # result came from an earlier run or a duplicate


@dataclass
class CaptionOptions:
    task: str
    params: dict[str, Any]
    out_dir: Path
    formats: tuple[str, ...] = ("srt", "vtt", "json")
    include_hidden: bool = False
    prefetch: int = 1  # jobs decoded ahead of the engine (0: off)


@dataclass
class Progress:
    total: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    reused: int = 0  # finished earlier or a duplicate: no engine work this run
    media_seconds: float = 0.0  # processed in this run


ProgressCallback = Callable[[Progress, FileOutcome | None], None]


@contextmanager
def run_lock(data_dir: Path) -> Iterator[None]:
    """One caption run per data folder: lets a rerun take over jobs a killed run left running."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / "caption.lock").open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise RuntimeError(f"another caption run is using {data_dir}") from exc
        yield


class CaptionRun:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        storage: Storage,
        runner: JobRunner,
        options: CaptionOptions,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.settings, self.sessions, self.storage, self.runner = settings, sessions, storage, runner
        self.options = options
        self.spec = get_task(options.task)
        self.params = parse_params(options.task, options.params).model_dump(mode="json", exclude_unset=True)
        self.on_progress = on_progress or (lambda _p, _o: None)
        self.progress = Progress()

    # -- planning ---------------------------------------------------------------------------------
    def _find_or_create_job(self, session: Session, entry: ArchiveEntry) -> Job:
        candidates = session.scalars(
            select(Job)
            .where(Job.content_sha256 == entry.sha256, Job.task == self.spec.name.value)
            .order_by(Job.created_at.desc())
        )
        for job in candidates:
            if job.params == self.params:
                return job
        task = self.spec.name.value
        asked = intake.JobRequest(
            LOCAL_TENANT, task, params=self.params, formats=[], local_file=entry.path, content_sha256=entry.sha256
        )
        return intake.submit_job(session, self.storage, self.settings, asked)[0]

    def plan(self, source: Path) -> tuple[dict[str, list[ArchiveEntry]], list[FileOutcome], dict[str, str]]:
        """Group files by content; create or find one job per content; list skips."""
        by_sha, skipped = group_by_content(source, self.options.include_hidden)
        job_ids: dict[str, str] = {}
        with self.sessions() as session:
            for sha, entries in by_sha.items():
                job = self._find_or_create_job(session, entries[0])
                if job.state == JobState.RUNNING:  # left running by a killed run: we hold the run lock
                    machine.transition(session, job.id, Transition.RECLAIM, "interrupted run resumed", "caption")
                job_ids[sha] = job.id
        return by_sha, skipped, job_ids

    # -- running ----------------------------------------------------------------------------------
    def run(self, source: Path) -> list[FileOutcome]:
        started = time.monotonic()
        with run_lock(self.settings.data_dir):
            by_sha, outcomes, job_ids = self.plan(source)
            self.progress.total = sum(len(v) for v in by_sha.values()) + len(outcomes)
            self.progress.skipped = len(outcomes)
            self.on_progress(self.progress, None)
            pending: list[str] = []
            with self.sessions() as session:
                for sha, job_id in job_ids.items():
                    job = session.get(Job, job_id)
                    assert job is not None
                    if job.state.final:
                        self._run_tracks(job.id)  # a killed run may have left its tracks to do
                        outcomes += self._export(sha, by_sha[sha], job, reused=True)
                    else:
                        pending.append(sha)
            outcomes += self._run_pending(pending, by_sha, job_ids)
            self._write_manifest(outcomes)
            self._write_report(source, outcomes, time.monotonic() - started)
            return outcomes

    def _run_pending(
        self, pending: list[str], by_sha: dict[str, list[ArchiveEntry]], job_ids: dict[str, str]
    ) -> list[FileOutcome]:
        outcomes: list[FileOutcome] = []
        # Threads beyond the first decode the next jobs while the engine (one lock) works on the current one.
        workers = 1 + max(self.options.prefetch, 0)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="caption") as pool:
            queue = iter(pending)
            running: dict[Future[Any], str] = {}

            def fill() -> None:
                while len(running) < workers:
                    sha = next(queue, None)
                    if sha is None:
                        return
                    running[pool.submit(run_until_settled, self.runner, job_ids[sha])] = sha

            fill()
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    sha = running.pop(future)
                    future.result()
                    self._run_tracks(job_ids[sha])
                    with self.sessions() as session:
                        job = session.get(Job, job_ids[sha])
                        assert job is not None
                        outcomes += self._export(sha, by_sha[sha], job, reused=False)
                fill()
        return outcomes

    # -- exports ----------------------------------------------------------------------------------
    def _export(self, sha: str, entries: list[ArchiveEntry], job: Job, reused: bool) -> list[FileOutcome]:
        results: list[FileOutcome] = []
        for position, entry in enumerate(entries):
            outcome = FileOutcome(
                entry.rel, sha, job.state, job.media_seconds, job_id=job.id, reused=reused or position > 0
            )
            if job.state == JobState.SUCCEEDED:
                outcome.outputs = self._write_sidecars(entry, job)
                self.progress.done += 1
                if outcome.reused:
                    self.progress.reused += 1
                else:
                    self.progress.media_seconds += job.media_seconds or 0.0
            elif job.failure_class == FailureClass.MEDIA and not entry.looks_like_media:
                outcome.state, outcome.error = "skipped", f"not a media file: {job.failure_reason}"
                self.progress.skipped += 1
            elif job.failure_class == FailureClass.INVALID_INPUT:  # e.g. an image in a transcription run
                outcome.state, outcome.error = "skipped", f"not for this task: {job.failure_reason}"
                self.progress.skipped += 1
            else:
                outcome.error = job.failure_reason or f"job {job.state}"
                self.progress.failed += 1
            results.append(outcome)
            self.on_progress(self.progress, outcome)
        return results

    def _run_tracks(self, job_id: str) -> None:
        """A finished transcription's translated tracks (its own jobs): run here, after it, or waited for where this
        process's in-process worker took one first."""
        with self.sessions() as session:
            job = session.get(Job, job_id)
            tracks = list(((job.result or {}).get("subtitle_tracks") or {}).values()) if job else []
        for track_id in tracks:
            while (outcome := self.runner.run(track_id)).status in (RunStatus.RETRY, RunStatus.BUSY):
                time.sleep(min(outcome.delay_s, 0.2) if outcome.status is RunStatus.BUSY else outcome.delay_s)

    def _write_sidecars(self, entry: ArchiveEntry, job: Job) -> list[str]:
        """Each format asked for, rendered from the job's result (the job itself writes nothing to storage), and
        each translated track's SRT and VTT as NAME.<lang>.srt / .vtt."""
        written = []
        result = job.result or {}
        for fmt in (f for f in self.options.formats if f in formats_for(result)):
            body = self._sidecar_json(entry, job) if fmt == "json" else render(job.id, job.task, result, fmt)
            name = "descriptions.vtt" if fmt == "vtt" and result.get("audio_description") else fmt
            written.append(write_sidecar(self.options.out_dir, entry.rel, name, body))
        with self.sessions() as session:
            for language in result.get("subtitle_tracks") or {}:
                track = track_of(session, job, language)
                if track is None or track.state != JobState.SUCCEEDED or track.result is None:
                    continue
                for fmt in (f for f in self.options.formats if f in ("srt", "vtt")):
                    body = render(track.id, track.task, track.result, fmt)
                    written.append(write_sidecar(self.options.out_dir, entry.rel, f"{language}.{fmt}", body))
        return written

    def _sidecar_json(self, entry: ArchiveEntry, job: Job) -> bytes:
        """Stable across runs (no job ids or times), so a resumed run's files equal an uninterrupted run's."""
        result = dict(job.result or {})
        result.pop("subtitle_tracks", None)  # job ids: the tracks are the NAME.<lang>.* files beside it
        body = {"source": entry.rel, "sha256": entry.sha256, "task": job.task, "params": job.params, **result}
        return (json.dumps(body, ensure_ascii=False, indent=2) + "\n").encode("utf-8")

    def _write_manifest(self, outcomes: list[FileOutcome]) -> None:
        write_manifest(self.options.out_dir, outcomes)

    def _write_report(self, source: Path, outcomes: list[FileOutcome], wall_s: float) -> None:
        """report.html and report-summary.json beside the manifest, from the same outcomes (not report.json: that
        is the JSON sidecar of a file called report.* at the archive's root)."""
        ids = [o.job_id for o in outcomes if o.job_id]
        with self.sessions() as session:
            jobs = {job.id: job for job in session.scalars(select(Job).where(Job.id.in_(ids)))} if ids else {}
        lines = []
        for outcome in outcomes:
            job = jobs.get(outcome.job_id or "")
            result = (job.result if job else None) or {}
            engine = job.engine_seconds if job is not None and not outcome.reused else 0.0
            lines.append(
                ReportLine(
                    outcome.path,
                    outcome.state,
                    outcome.duration_s or 0.0,
                    engine or 0.0,
                    job.failure_class if job else None,
                    outcome.error,
                    result.get("language"),
                    len(result.get("speakers") or []),
                    result.get("quality"),
                )
            )
        report = build_report(f"Captioning of {source.name}", lines, wall_s, self.settings.accelerator_hour_cost)
        summary = (json.dumps(report, indent=2) + "\n").encode()
        write_sidecar(self.options.out_dir, "report-summary.json", "json", summary)
        write_sidecar(self.options.out_dir, "report.html", "html", report_html(report).encode("utf-8"))


def group_by_content(source: Path, include_hidden: bool) -> tuple[dict[str, list[ArchiveEntry]], list[FileOutcome]]:
    """Files under source grouped by sha256 (duplicates share one entry list), and the skipped ones."""
    by_sha: dict[str, list[ArchiveEntry]] = {}
    skipped: list[FileOutcome] = []
    for entry in walk(source, include_hidden):
        if entry.skip_reason or entry.sha256 is None:
            skipped.append(FileOutcome(entry.rel, None, "skipped", error=entry.skip_reason))
        else:
            by_sha.setdefault(entry.sha256, []).append(entry)
    return by_sha, skipped


def write_sidecar(out_dir: Path, rel: str, fmt: str, body: bytes) -> str:
    """Write OUT/rel-with-new-suffix atomically; return its path relative to out_dir."""
    base = out_dir / rel
    target = base.with_name(base.name.rsplit(".", 1)[0] + f".{fmt}") if "." in base.name else Path(f"{base}.{fmt}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    tmp.write_bytes(body)
    os.replace(tmp, target)
    return target.relative_to(out_dir).as_posix()


def write_manifest(out_dir: Path, outcomes: list[FileOutcome]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "manifest.jsonl"
    tmp = target.with_name("manifest.jsonl.part")
    with tmp.open("w", encoding="utf-8") as fh:
        for outcome in sorted(outcomes, key=lambda o: o.path):
            fh.write(json.dumps(asdict(outcome), ensure_ascii=False) + "\n")
    os.replace(tmp, target)
