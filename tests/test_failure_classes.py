"""Failure classes on the real runner, tiny model and SQLite, with faults injected at the storage and engine edges:
transient errors retry with backoff, out-of-memory retries once with half-length segments, attempts are capped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from core.jobs.failing import backoff_s
from core.jobs.runner import RunStatus, run_until_settled
from core.schema import Job, JobEvent
from core.storage import StorageError
from tests.embedded import embedded_engine
from tests.support import runner_on


class FlakyStorage:
    """Real local storage whose first `failures` downloads raise a transient error."""

    def __init__(self, inner, failures: int) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.failures = inner, failures

    def download(self, key: str, dest: Path, bucket: str | None = None) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise StorageError("connection reset by storage")
        self.inner.download(key, dest, bucket)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)


class OomOnceEngine:
    """The real engine, raising MemoryError on its first generate call."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.raised = inner, False

    def generate(self, request):  # type: ignore[no-untyped-def]
        if not self.raised:
            self.raised = True
            raise MemoryError("CUDA out of memory (simulated)")
        return self.inner.generate(request)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: Path):  # type: ignore[no-untyped-def]
    with embedded_engine(
        monkeypatch, tmp_path / "data", tiny_model, OMNIMEDIA_RETRY_BACKOFF_S="0.01", OMNIMEDIA_MAX_ATTEMPTS="3"
    ) as parts:
        yield parts


def _submit(env, path: Path, formats: list[str] | None = None, **params: object) -> str:  # type: ignore[no-untyped-def]
    from core.jobs.rows import JobRequest, prepare_job
    from core.schema import LOCAL_TENANT
    from core.uploads import store_upload

    settings, sessions, storage, _ = env
    with sessions() as session, path.open("rb") as fh:
        upload = store_upload(session, storage, settings, LOCAL_TENANT, path.name, None, fh)
        asked = JobRequest(LOCAL_TENANT, "transcribe", upload.id, dict(params), formats=formats)
        job = prepare_job(session, storage, settings, asked)
        session.commit()
        return job.id


def _events(env, job_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    with env[1]() as session:
        return [
            e.to_state for e in session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id))
        ]


def test_transient_storage_error_retries_then_succeeds(env, media: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    settings, sessions, storage, engine = env
    job_id = _submit(env, media["speech_wav"])
    runner = runner_on(settings, sessions, FlakyStorage(storage, failures=1), engine, "w")
    first = runner.run(job_id)
    assert first.status is RunStatus.RETRY and 0 <= first.delay_s <= 0.01
    assert run_until_settled(runner, job_id).status is RunStatus.SUCCEEDED
    assert _events(env, job_id) == ["queued", "running", "retrying", "running", "succeeded"]


def test_attempts_are_capped_and_last_error_kept(env, media: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    settings, sessions, storage, engine = env
    job_id = _submit(env, media["speech_wav"])
    runner = runner_on(settings, sessions, FlakyStorage(storage, failures=99), engine, "w")
    assert run_until_settled(runner, job_id).status is RunStatus.FAILED
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job.state == "failed" and job.attempts == 3 and job.failure_class == "transient"
        assert job.failure_reason == "storage or the database was briefly unavailable (after 3 attempts)"


def test_out_of_memory_retries_once_with_half_segments(env, media: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    settings, sessions, storage, engine = env
    job_id = _submit(env, media["speech_wav"], segment_seconds=6)
    runner = runner_on(settings, sessions, storage, OomOnceEngine(engine), "w")
    assert run_until_settled(runner, job_id).status is RunStatus.SUCCEEDED
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job.oom_retries == 1 and job.segment_seconds == 3.0 and job.segments_planned == 2
    assert "retrying" in _events(env, job_id)


def test_backoff_grows_and_is_bounded() -> None:
    assert all(0 <= backoff_s(1, 5, 600) <= 5 for _ in range(50))
    assert max(backoff_s(6, 5, 600) for _ in range(200)) > 40
    assert all(backoff_s(30, 5, 600) <= 600 for _ in range(50))


def test_gpu_pinning_happens_before_torch() -> None:
    code = (
        "import os; from workers.gpu import pin; name = pin('3', ['thinker']); import torch; "
        "print(name.split('@')[0], os.environ['CUDA_VISIBLE_DEVICES'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    assert out.stdout.split() == ["gpu3", "3"], out.stderr
    late = "import torch; from workers.gpu import pin; pin('0', ['thinker'])"
    failed = subprocess.run(
        [sys.executable, "-c", late],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    assert failed.returncode != 0 and "before GPU pinning" in failed.stderr


class LeakyEngine:
    """The real engine, failing with an error whose text names servers, SQL and paths (as real ones do)."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner

    def generate(self, request):  # type: ignore[no-untyped-def]
        raise RuntimeError(
            'connection to server at "db.internal" (10.0.0.5) failed: SELECT secret FROM '
            "api_keys; see /var/lib/omnimedia/tmp/omnimedia-x1/input"
        )

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)


def test_failure_reasons_carry_no_internals(env, media: dict[str, Path], tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    settings, sessions, storage, engine = env
    job_id = _submit(env, media["speech_wav"])
    runner = runner_on(settings, sessions, storage, LeakyEngine(engine), "w")
    with caplog.at_level("ERROR"):
        assert run_until_settled(runner, job_id).status is RunStatus.FAILED
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 10)
    broken_id = _submit(env, corrupt)
    assert run_until_settled(runner_on(settings, sessions, storage, engine, "w"), broken_id).status is RunStatus.FAILED
    with sessions() as session:
        job, broken = session.get(Job, job_id), session.get(Job, broken_id)
        told = [job.failure_reason, broken.failure_reason] + [
            e.reason or "" for e in session.scalars(select(JobEvent).where(JobEvent.job_id.in_([job_id, broken_id])))
        ]
    assert job.failure_class == "internal" and broken.failure_class == "media"
    for text in told:
        for secret in ("db.internal", "10.0.0.5", "SELECT", "/var/lib", "/tmp", "omnimedia-"):
            assert secret not in text, (secret, text)
    assert "db.internal" in caplog.text and job_id in caplog.text, "operators get the detail, with the job id"


class TakenOverEngine:
    """The real engine; during its first generate call another worker takes the job over (the lease ran out)."""

    def __init__(self, inner, sessions, job_id: str) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.sessions, self.job_id, self.done = inner, sessions, job_id, False

    def generate(self, request):  # type: ignore[no-untyped-def]
        if not self.done:
            self.done = True
            from core.jobs import machine

            with self.sessions() as session:
                assert machine.start(session, self.job_id, "worker-b", lease_s=0.0)
        return self.inner.generate(request)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)


def test_a_run_that_lost_its_lease_writes_nothing_final(env, media: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    """Fencing: the run stops at the next boundary; the job's outputs come from the run that committed."""
    from datetime import timedelta

    from sqlalchemy import update

    from core.schema import utcnow

    settings, sessions, storage, engine = env
    job_id = _submit(env, media["speech_wav"], formats=["json", "srt"], segment_seconds=6)  # two segments
    first = runner_on(settings, sessions, storage, TakenOverEngine(engine, sessions, job_id), "worker-a")
    assert first.run(job_id).reason.startswith("lease lost")
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job.state == "running" and job.worker == "worker-b" and job.attempts == 2 and job.outputs is None
    assert not [k for k in storage.list(f"tenants/local/jobs/{job_id}/") if "/result." in k]
    with sessions() as session:  # worker-b died too: its lease runs out, and a third run takes over and finishes
        session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow() - timedelta(hours=1)))
        session.commit()
    third = runner_on(settings, sessions, storage, engine, "worker-c")
    assert run_until_settled(third, job_id).status is RunStatus.SUCCEEDED
    with sessions() as session:
        job = session.get(Job, job_id)
    assert job.attempts == 3 and all("/attempt-3/" in key for key in job.outputs.values())
    results = [k for k in storage.list(f"tenants/local/jobs/{job_id}/") if "/result." in k]
    assert results and all("/attempt-3/" in k for k in results), "only the committing run wrote result files"


class ContextOf:
    """The real engine with a model context of `seconds` of media: longer segments raise PromptTooLong, as the
    vLLM backend does for a prompt over max_model_len."""

    def __init__(self, inner, seconds: float) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.seconds, self.refused = inner, seconds, 0

    def generate(self, request):  # type: ignore[no-untyped-def]
        from models.errors import PromptTooLong

        if request.media.end_s - request.media.start_s > self.seconds:
            self.refused += 1
            raise PromptTooLong("the prompt is longer than the maximum model length")
        return self.inner.generate(request)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)


def test_a_prompt_over_the_context_is_retried_with_smaller_segments(env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Like running out of memory: the segments are halved (12 s -> 6 s -> 3 s) until the prompt fits."""
    from tests.support import speech

    settings, sessions, storage, engine = env
    long = speech(tmp_path / "twelve.wav", "One sentence after another fills a dozen seconds of audio. " * 2, 1.0)
    job_id = _submit(env, long, segment_seconds=12)
    refusing = ContextOf(engine, seconds=4.0)
    runner = runner_on(settings, sessions, storage, refusing, "w")
    assert run_until_settled(runner, job_id).status is RunStatus.SUCCEEDED
    with sessions() as session:
        job = session.get(Job, job_id)
        events = [e.reason or "" for e in session.scalars(select(JobEvent).where(JobEvent.job_id == job_id))]
    assert refusing.refused == 2 and job.oom_retries == 2 and job.segment_seconds <= 4.0
    assert job.segments_planned >= 3 and any("retry with 6 s segments" in e for e in events), events
