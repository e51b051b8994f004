"""Tracks from one run, on the tiny model (CPU, in-process: the real load/generate path; its words are noise, so
this measures the work, not the quality). N translated subtitle tracks of a transcript (text-only requests, cues in
batches) against N `translate` jobs on the same file (the model re-listens to the audio once per language), in
engine seconds; and audio description time per minute of video. Last line: ratio (tracks over re-listening),
tracks_s, relisten_s, prompt_tokens_ratio (what the engine reads: on the real model the prefill of the audio is
what a re-listen costs, and the tiny model's encoders cost next to nothing), description_s_per_video_min."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

LANGUAGES = ["de", "fr", "ja"]
MINUTES = float(os.environ.get("BENCH_MINUTES", "1"))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        from models.fixtures.tiny import build
        from tests.support import long_speech, video_with_audio

        os.environ.update(
            OMNIMEDIA_MODE="embedded",
            OMNIMEDIA_DATA_DIR=str(tmp / "data"),
            OMNIMEDIA_MODEL=str(build(tmp / "tiny")),
            OMNIMEDIA_MAX_NEW_TOKENS_CAP="32",
            TOKENIZERS_PARALLELISM="false",
        )
        from core import migrate
        from core.config import get_settings
        from core.db import get_sessionmaker
        from core.jobs.rows import JobRequest, prepare_job
        from core.jobs.runner import build_runner, run_until_settled
        from core.schema import LOCAL_TENANT, Job
        from core.storage import get_storage
        from core.uploads import store_upload

        settings = get_settings()
        migrate.upgrade(settings.resolved_database_url())
        sessions, storage = get_sessionmaker(), get_storage()
        runner = build_runner(settings, "bench")
        talk = long_speech(tmp, MINUTES)
        video = video_with_audio(talk, tmp / "programme.mp4")

        def run(task: str, path: Path | None, ref: str = "", **params: object) -> Job:
            with sessions() as session:
                if path is not None:
                    with path.open("rb") as fh:
                        ref = store_upload(session, storage, settings, LOCAL_TENANT, path.name, None, fh).id
                job_id = prepare_job(session, storage, settings, JobRequest(LOCAL_TENANT, task, ref, dict(params))).id
                session.commit()
            run_until_settled(runner, job_id)
            with sessions() as session:
                found = session.get(Job, job_id)
                assert found is not None and found.state == "succeeded", found and found.failure_reason
                return found

        run("transcribe", talk, max_new_tokens=8)  # warm-up: model and VAD loaded before anything is timed
        transcript = run("transcribe", talk, subtitle_languages=LANGUAGES, max_new_tokens=32)
        tracks = (transcript.result or {})["subtitle_tracks"]
        for track_id in tracks.values():
            run_until_settled(runner, track_id)
        tracks_s = sum(_engine_s(sessions, track_id)[0] for track_id in tracks.values())
        tracks_tokens = sum(_engine_s(sessions, track_id)[1] for track_id in tracks.values())
        relistened = [run("translate", talk, target_language=lang) for lang in LANGUAGES]
        relisten_s = sum(job.engine_seconds for job in relistened)
        relisten_tokens = sum(int((job.result or {}).get("prompt_tokens") or 0) for job in relistened)
        started = time.perf_counter()
        described = run("describe_video", video, audio_description=True, description_min_gap_s=0.8, max_new_tokens=32)
        wall_s = time.perf_counter() - started
        cues = len((described.result or {}).get("segments", []))
    per_min = described.engine_seconds / MINUTES
    print(
        f"{len(LANGUAGES)} tracks of a {MINUTES:g}-minute transcript: {tracks_s:.2f} engine s; {len(LANGUAGES)} "
        f"translate jobs on the audio: {relisten_s:.2f} engine s; description: {cues} cues, {wall_s:.1f} s wall"
    )
    print(
        f"ratio={tracks_s / relisten_s:.2f} tracks_s={tracks_s:.2f} relisten_s={relisten_s:.2f} "
        f"prompt_tokens_ratio={tracks_tokens / relisten_tokens:.3f} description_s_per_video_min={per_min:.2f}"
    )


def _engine_s(sessions: object, job_id: str) -> tuple[float, int]:
    """A job's engine seconds and prompt tokens."""
    from core.schema import Job

    with sessions() as session:  # type: ignore[operator]
        job = session.get(Job, job_id)
        return float(job.engine_seconds or 0.0), int((job.result or {}).get("prompt_tokens") or 0)


if __name__ == "__main__":
    main()
