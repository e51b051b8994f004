"""The media path in-process: honest durations (what decodes counts, not the header), plans stored with the job
so a retry never decodes its file again to re-plan, and few transactions per job."""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path

import pysubs2
import pytest
from sqlalchemy import event, select

from core.jobs.runner import RunStatus, run_until_settled
from core.schema import Job
from models.media import load_media, probe
from tests.embedded import embedded_engine
from tests.media_corpus import damaged_media
from tests.support import runner_on, speech


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return damaged_media(tmp_path_factory.mktemp("damaged"))


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: Path):  # type: ignore[no-untyped-def]
    with embedded_engine(monkeypatch, tmp_path / "data", tiny_model, OMNIMEDIA_RETRY_BACKOFF_S="0.01") as parts:
        yield parts


def _submit(env, path: Path, task: str = "transcribe", **params: object) -> str:  # type: ignore[no-untyped-def]
    from core.jobs.rows import JobRequest, prepare_job
    from core.schema import LOCAL_TENANT
    from core.uploads import store_upload

    settings, sessions, storage, _ = env
    with sessions() as session, path.open("rb") as fh:
        upload = store_upload(session, storage, settings, LOCAL_TENANT, path.name, None, fh)
        job = prepare_job(session, storage, settings, JobRequest(LOCAL_TENANT, task, upload.id, dict(params)))
        session.commit()
        return job.id


def _job(env, job_id: str) -> Job:  # type: ignore[no-untyped-def]
    with env[1]() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def test_a_truncated_file_decodes_to_what_it_holds_with_a_warning(damaged: dict[str, Path]) -> None:
    path = damaged["truncated_mp4"]
    info = probe(path)
    assert info.duration_s == pytest.approx(5.0, abs=0.1), "the header still claims the whole file"
    media = load_media(path, info=info)
    assert 2.5 < media.end_s < 3.6 and media.frames is not None and media.audio is not None
    assert media.audio.size / 16_000 <= media.end_s + 0.05
    assert any("decoded 3" in w and "of 5.0 s" in w and "truncated" in w for w in media.warnings), media.warnings


def test_a_damaged_stream_is_decoded_past_with_a_warning(damaged: dict[str, Path]) -> None:
    media = load_media(damaged["damaged_mp3"])
    assert media.audio is not None and media.audio.size / 16_000 > 5.0
    assert any("damaged at" in w for w in media.warnings), media.warnings


def test_a_header_claiming_hours_around_a_second_counts_as_a_second(damaged: dict[str, Path]) -> None:
    info = probe(damaged["lying_wav"])
    media = load_media(damaged["lying_wav"], info=info)
    assert info.duration_s == pytest.approx(1.0, abs=0.05) and media.end_s == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize(
    ("name", "task"),
    [
        ("truncated_mp4", "describe_video"),
        ("truncated_mp4", "transcribe"),
        ("damaged_mp3", "transcribe"),
        ("lying_wav", "caption_audio"),
    ],
)
def test_no_cue_ends_past_the_decoded_media(env, damaged: dict[str, Path], name: str, task: str) -> None:  # type: ignore[no-untyped-def]
    """The job succeeds with the warnings of its decode; its duration, segments and every SRT/VTT cue end where
    the decoded media ends, not where the header says."""
    from core.jobs.outputs import render

    settings, sessions, storage, engine = env
    job_id = _submit(env, damaged[name], task)
    assert run_until_settled(runner_on(settings, sessions, storage, engine, "w"), job_id).status is RunStatus.SUCCEEDED
    job = _job(env, job_id)
    result = job.result
    assert result is not None
    decoded = result["duration_s"]
    if name == "truncated_mp4":
        assert decoded < 3.6 and any("truncated" in w for w in result["warnings"]), result
    if name == "damaged_mp3":
        assert any("damaged" in w for w in result["warnings"]), result
    assert job.media_seconds == decoded
    assert all(s["end"] <= decoded + 1e-6 for s in result["segments"])
    for fmt in ("srt", "vtt"):
        cues = pysubs2.SSAFile.from_string(render(job.id, job.task, result, fmt).decode(), format_=fmt)
        assert all(cue.end / 1000 <= decoded + 0.001 for cue in cues), (fmt, [c.end for c in cues], decoded)


@pytest.fixture(scope="module")
def fifteen_seconds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return speech(tmp_path_factory.mktemp("plan") / "long.wav", "This recording is long enough to be cut. " * 5, 1.0)


class FailsOnSegment:
    """The real engine, failing with a transient error on one segment index (once)."""

    def __init__(self, inner, index: int) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.index, self.calls, self.failed = inner, index, 0, False

    def generate(self, request):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls - 1 == self.index and not self.failed:
            self.failed = True
            raise ConnectionError("engine server went away")
        return self.inner.generate(request)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)


def test_a_retried_job_reuses_its_stored_plan_without_decoding_to_replan(
    env, fifteen_seconds: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from models.segments import PlanScan

    settings, sessions, storage, engine = env
    job_id = _submit(env, fifteen_seconds, segment_seconds=5)
    first = runner_on(settings, sessions, storage, FailsOnSegment(engine, 1), "w")
    assert first.run(job_id).status is RunStatus.RETRY
    job = _job(env, job_id)
    assert job.plan is not None and job.plan["decoded"] and job.segments_done == 1
    assert job.plan.get("complete", True), (
        "a file shorter than one scan window is planned whole before its first segment"
    )
    planned = job.segments_planned

    def no_replanning(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the stored plan must be used")

    monkeypatch.setattr(PlanScan, "run", no_replanning)
    assert run_until_settled(runner_on(settings, sessions, storage, engine, "w"), job_id).status is RunStatus.SUCCEEDED
    job = _job(env, job_id)
    assert job.segments_done == planned and len(job.result["segments"]) == planned >= 3


def test_a_one_segment_job_takes_two_write_transactions_to_run(env, damaged: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    """The claim, then the success with its segment (there were about eight before)."""
    settings, sessions, storage, engine = env
    job_id = _submit(env, damaged["lying_wav"], "caption_audio")
    commits: list[int] = []

    def counted(_connection: object) -> None:
        commits.append(1)

    bind = sessions.kw["bind"]
    event.listen(bind, "commit", counted)
    try:
        assert runner_on(settings, sessions, storage, engine, "w").run(job_id).status is RunStatus.SUCCEEDED
    finally:
        event.remove(bind, "commit", counted)
    assert len(commits) == 2, len(commits)
    with sessions() as session:
        assert session.scalar(select(Job.state).where(Job.id == job_id)) == "succeeded"


class Killed(SystemExit):
    """Stands for the process being killed: nothing in the runner handles it."""


def test_a_job_killed_while_its_file_is_still_being_planned_resumes_from_its_stored_plan(
    env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """Planning streams beside the engine and is stored with each segment: a job killed part-way has a partial
    plan and its finished segments; the next run keeps both and scans on from where the plan stopped."""
    from sqlalchemy import update

    from core.schema import JobSegment, utcnow
    from tests.support import long_speech, spy_scan_starts

    settings, sessions, storage, engine = env
    job_id = _submit(env, long_speech(tmp_path, 12.0), segment_seconds=60, max_new_tokens=2)

    class DiesOnSecond:
        def __init__(self, inner: object) -> None:
            self.inner, self.calls = inner, 0

        def generate(self, request):  # type: ignore[no-untyped-def]
            self.calls += 1
            if self.calls == 2:
                raise Killed()
            return self.inner.generate(request)  # type: ignore[attr-defined]

        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            return getattr(self.inner, name)

    with pytest.raises(Killed):
        runner_on(settings, sessions, storage, DiesOnSecond(engine), "first").run(job_id)
    job = _job(env, job_id)
    assert job.plan is not None and job.plan["complete"] is False and job.segments_done == 1, job.plan
    stopped_at = job.plan["duration_s"]
    assert 60 < stopped_at < 12 * 60 - 30
    with sessions() as session:  # the killed worker's lease runs out
        session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow() - timedelta(hours=1)))
        first = session.scalars(select(JobSegment).where(JobSegment.job_id == job_id)).one()
        session.commit()

    starts = spy_scan_starts(monkeypatch)
    result = run_until_settled(runner_on(settings, sessions, storage, engine, "second"), job_id)
    assert result.status is RunStatus.SUCCEEDED, result
    assert starts and starts[0] >= stopped_at - 1e-6, "the scan went on from the stored plan, not from 0"
    job = _job(env, job_id)
    assert job.plan is not None and job.plan.get("complete", True)
    spans = [(s["start"], s["end"]) for s in job.result["segments"]]
    assert spans[0] == (first.start_s, first.end_s), "the killed run's segment was kept"
    assert len(spans) == job.segments_planned >= 12 and spans[-1][1] == pytest.approx(12 * 60, abs=0.2)
    assert all(b[0] == pytest.approx(a[1]) for a, b in itertools.pairwise(spans))
