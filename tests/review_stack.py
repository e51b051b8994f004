"""One finished job to review: the API on a real uvicorn process (embedded default: SQLite, a local folder, the
in-process worker, the tiny model), two tenants' keys, and a transcribed video with speech whose transcript (noise,
from random weights) has several word-timed cues."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support import api_key, env_for, ffmpeg, running_api, speech, video_with_audio


@dataclass
class Reviewed:
    base: str
    env: dict[str, str]
    alpha: httpx.Client  # the job's tenant
    beta: httpx.Client  # another tenant
    job_id: str
    data_dir: Path


def speech_video(root: Path) -> Path:
    """About 9 s of speech with pauses over a test pattern, H.264/AAC MP4 (what headless Chromium plays)."""
    parts = [
        speech(root / "a.wav", "The flood barrier held through the night.", 1.0),
        speech(root / "b.wav", "In the morning the river was back inside its banks.", 1.0),
    ]
    talk = root / "talk.wav"
    ffmpeg("-i", str(parts[0]), "-i", str(parts[1]), "-filter_complex", "concat=n=2:v=0:a=1", str(talk))
    return video_with_audio(talk, root / "evening-news.mp4")


@contextmanager
def reviewed_job(root: Path, model: Path) -> Iterator[Reviewed]:
    data = root / "data"
    env = env_for(
        OMNIMEDIA_MODE="embedded",
        OMNIMEDIA_DATA_DIR=str(data),
        OMNIMEDIA_MODEL=str(model),
        OMNIMEDIA_MAX_NEW_TOKENS_CAP="40",
        TOKENIZERS_PARALLELISM="false",
    )
    keys = {tenant: api_key(env, tenant) for tenant in ("alpha", "beta")}
    video = speech_video(root)
    with running_api(env, root / "api.log") as api:
        clients = {
            t: httpx.Client(base_url=api.base, headers={"Authorization": f"Bearer {k}"}, timeout=30)
            for t, k in keys.items()
        }
        try:
            upload = clients["alpha"].post("/v1/uploads", files={"file": (video.name, video.read_bytes())}).json()
            job = (
                clients["alpha"]
                .post("/v1/jobs", json={"task": "transcribe", "input": upload["id"], "params": {"max_new_tokens": 40}})
                .json()
            )
            deadline = time.monotonic() + 180
            while clients["alpha"].get(f"/v1/jobs/{job['id']}").json()["state"] != "succeeded":
                assert time.monotonic() < deadline, clients["alpha"].get(f"/v1/jobs/{job['id']}").json()
                time.sleep(0.3)
            yield Reviewed(api.base, env, clients["alpha"], clients["beta"], job["id"], data)
        finally:
            for client in clients.values():
                client.close()
