"""Audio description for video on the tiny checkpoint (its words are noise; timing and structure are real): cues
only inside the pauses of speech, every narration inside its pause, a description audio track aligned to the
programme, and a described copy whose video packets are the original's with one more audio stream; a video with no
pause long enough gets an empty track and a warning, not a failure."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import soundfile as sf

from core.jobs.outputs import render
from core.jobs.runner import RunStatus, run_until_settled
from core.schema import LOCAL_TENANT, Job
from models.chunking import speech_regions
from models.decoding import decode_audio
from models.description import OUTPUT_RATE, description_gaps
from tests.embedded import embedded_engine
from tests.support import ffmpeg, runner_on, speech, video_with_audio


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: Path):  # type: ignore[no-untyped-def]
    with embedded_engine(
        monkeypatch,
        tmp_path / "data",
        tiny_model,
        OMNIMEDIA_TALKER_MAX_NEW_TOKENS="20",
        OMNIMEDIA_MAX_NEW_TOKENS_CAP="12",
    ) as (settings, sessions, storage, _):
        from models.loader import load_engine

        yield settings, sessions, storage, load_engine(settings.engine_config(True))  # with the talker


def video_over(root: Path, audio: Path, name: str) -> Path:
    return video_with_audio(audio, root / name)


@pytest.fixture(scope="module")
def programme(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Speech, 3.5 s of silence, speech, 3 s of silence: two pauses to describe."""
    root = tmp_path_factory.mktemp("programme")
    first = speech(root / "a.wav", "The flood barrier held through the night.", 3.5)
    second = speech(root / "b.wav", "In the morning the town was dry.", 3.0)
    talk = root / "talk.wav"
    ffmpeg("-i", str(first), "-i", str(second), "-filter_complex", "concat=n=2:v=0:a=1", str(talk))
    return video_over(root, talk, "programme.mp4")


def submit(env: Any, path: Path, **params: object) -> str:
    from core.jobs.rows import JobRequest, prepare_job
    from core.uploads import store_upload

    settings, sessions, storage, _ = env
    with sessions() as session, path.open("rb") as fh:
        upload = store_upload(session, storage, settings, LOCAL_TENANT, path.name, None, fh)
        request = JobRequest(LOCAL_TENANT, "describe_video", upload.id, dict(params))
        job = prepare_job(session, storage, settings, request)
        session.commit()
        return job.id


def finished(env: Any, job_id: str) -> Job:
    settings, sessions, storage, engine = env
    assert run_until_settled(runner_on(settings, sessions, storage, engine, "w"), job_id).status is RunStatus.SUCCEEDED
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.result is not None
        return job


def video_packets(path: Path) -> list[str]:
    with av.open(str(path)) as container:
        return [hashlib.sha256(bytes(p)).hexdigest() for p in container.demux(container.streams.video[0]) if p.size]


def test_descriptions_and_their_narration_lie_in_the_pauses_and_the_copy_keeps_the_video(
    env: Any, programme: Path, tmp_path: Path
) -> None:
    job = finished(env, submit(env, programme, audio_description=True, voice="Ethan", description_mix=True))
    result = job.result or {}
    audio, _ = decode_audio(programme)
    speech_spans = speech_regions(audio)
    cues = result["segments"]
    assert result["audio_description"] and len(cues) >= 2, result
    for cue in cues:  # inside pauses only
        assert all(cue["end"] <= s.start + 1e-3 or cue["start"] >= s.end - 1e-3 for s in speech_spans), (
            cue,
            speech_spans,
        )
    vtt = render(job.id, job.task, result, "vtt").decode()
    assert vtt.startswith("WEBVTT") and vtt.count("-->") == len(cues)

    storage = env[2]
    outputs = job.outputs or {}
    narration, rate = sf.read(io.BytesIO(storage.get_bytes(outputs["wav"])), dtype="float32")
    assert rate == OUTPUT_RATE and abs(narration.size / rate - result["duration_s"]) < 0.1, "aligned to the programme"
    for cue in cues:  # every narration plays inside its pause, none sped up past the limit
        assert 0 < cue["spoken_s"] <= cue["end"] - cue["start"] + 1e-3, cue

    copy = tmp_path / "described.mp4"
    copy.write_bytes(storage.get_bytes(outputs["video"]))
    assert video_packets(copy) == video_packets(programme), "the video stream is the original's, packet for packet"
    with av.open(str(programme)) as before, av.open(str(copy)) as after:
        assert len(after.streams.audio) == len(before.streams.audio) + 1


def test_a_video_without_pauses_long_enough_gets_an_empty_track_and_a_warning(env: Any, tmp_path: Path) -> None:
    talk = speech(tmp_path / "talk.wav", "We speak without a break from the start of this clip to its very end.")
    job = finished(
        env, submit(env, video_over(tmp_path, talk, "busy.mp4"), audio_description=True, description_min_gap_s=3.0)
    )
    result = job.result or {}
    assert job.state == "succeeded" and result["segments"] == []
    assert any("descriptions track is empty" in w for w in result["warnings"])


def test_pauses_are_found_between_speech_with_margins() -> None:
    from models.chunking import Span

    gaps = description_gaps(0.0, 12.0, [Span(1.0, 3.0), Span(6.0, 8.0)], [Span(8.5, 9.0)], 1.5)
    assert gaps == [Span(3.2, 5.8), Span(9.2, 12.0)], "before the first speech (1 s) is too short; margins kept"


def test_a_narration_is_placed_as_it_is_a_little_faster_or_not_at_all() -> None:
    from models.chunking import Span
    from models.description import MAX_SPEEDUP, fitted

    gap = Span(10.0, 12.0)  # 2 s: 48,000 samples
    short = np.ones(40_000, dtype=np.float32)
    assert fitted(short, gap) is short
    near = np.ones(int(48_000 * (MAX_SPEEDUP - 0.05)), dtype=np.float32)
    squeezed = fitted(near, gap)
    assert squeezed is not None and squeezed.size == 48_000, "sped up to fit, never past MAX_SPEEDUP"
    assert fitted(np.ones(int(48_000 * (MAX_SPEEDUP + 0.05)), dtype=np.float32), gap) is None, "asked again instead"
