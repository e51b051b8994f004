"""Files through the embedded `omnimedia caption`, prefetch on against off in the same run:
- 200 short speech clips on the tiny model (real engine);
- 500 clips of 3 s on the SLEEPING STAND-IN (bench.standin, benchmark only): 200 ms a request under one lock, as
  a GPU frees the CPU while it works. Its busy fraction says whether decoding, storage and database work keep a
  real accelerator fed on this 2-core machine (goal >= 0.95 with prefetch).
Wall time runs from the first job's start to the last job's end (model load excluded). Last line: the stand-in's
busy fraction with and without prefetch, and the tiny model's idle fraction."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np
import soundfile as sf

from models.fixtures.tiny import build
from tests.support import env_for, ffmpeg, speech

FILES = int(os.environ.get("BENCH_FILES", "200"))
CLIPS = int(os.environ.get("BENCH_CLIPS", "500"))
STAND_IN = "sleep:0.2"


def speech_archive(root: Path) -> Path:
    root.mkdir(parents=True)
    voices = [
        speech(root.parent / f"v{i}.wav", text, 0.2)
        for i, text in enumerate(
            ["One short clip.", "Another sample here.", "Archive file number three.", "The last voice."]
        )
    ]
    for i in range(FILES):
        folder = root / f"box{i % 10:02d}"
        folder.mkdir(exist_ok=True)
        ffmpeg("-i", str(voices[i % 4]), "-af", f"volume={0.3 + i / 400:.4f}", str(folder / f"clip{i:04d}.flac"))
    return root


def clip_archive(root: Path) -> Path:
    """CLIPS distinct 3 s FLAC files (tones that differ per file, so none is deduplicated)."""
    t = np.arange(3 * 16_000) / 16_000
    for i in range(CLIPS):
        folder = root / f"box{i % 20:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        tone = 0.2 * np.sin(2 * np.pi * (200 + i) * t) * (np.sin(2 * np.pi * 0.7 * t) > -0.3)
        sf.write(folder / f"clip{i:04d}.flac", tone.astype(np.float32), 16_000)
    return root


def run(
    archive: Path, data: Path, model: Path, prefetch: int, stand_in: str | None = None, task: str = "transcribe"
) -> tuple[float, float, int]:
    env = env_for(OMNIMEDIA_DATA_DIR=str(data), OMNIMEDIA_MODEL=str(model), OMNIMEDIA_MAX_NEW_TOKENS_CAP="16")
    entry = ["-m", "cli"] if stand_in is None else ["-m", "bench.standin", stand_in, "--cli"]
    cmd = [
        sys.executable,
        *entry,
        "caption",
        str(archive),
        "--task",
        task,
        "--out",
        str(data / "out"),
        "--json",
        "--prefetch",
        str(prefetch),
    ]
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=3600)
    with sqlite3.connect(data / "omnimedia.db") as db:
        first, last, count = db.execute(
            "SELECT min(started_at), max(finished_at), count(*) FROM jobs WHERE state = 'succeeded'"
        ).fetchone()
        engine = db.execute("SELECT sum(engine_seconds) FROM job_segments").fetchone()[0]
    wall = (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds()
    return wall, float(engine), int(count)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = build(tmp / "tiny")
        spoken = speech_archive(tmp / "speech" / "root")
        clips = clip_archive(tmp / "clips")
        tiny = {p: run(spoken, tmp / f"tiny{p}", model, p) for p in (1, 0)}
        # Tones are not speech: transcribe would skip the engine for them (silero-vad hears nothing), so the
        # stand-in runs describe them (caption_audio), which always asks the engine.
        sleeping = {p: run(clips, tmp / f"sleep{p}", model, p, STAND_IN, "caption_audio") for p in (1, 0)}
    for name, results in (("tiny model", tiny), (f"stand-in {STAND_IN} (benchmark only)", sleeping)):
        for prefetch, (wall, engine, count) in results.items():
            print(
                f"{name}: prefetch={prefetch} files={count} wall_s={wall:.2f} engine_s={engine:.2f} "
                f"busy={engine / wall:.3f} overhead_ms_per_file={(wall - engine) / count * 1000:.1f}"
            )
    (w1, e1, _), (w0, e0, _) = sleeping[1], sleeping[0]
    (tw1, te1, tn1), _ = tiny[1], tiny[0]
    print(
        f"standin_busy={e1 / w1:.3f} standin_busy_no_prefetch={e0 / w0:.3f} tiny_idle={1 - te1 / tw1:.3f} "
        f"tiny_overhead_ms={(tw1 - te1) / tn1 * 1000:.1f} ratio={w1 / w0:.3f} ours_s={w1:.2f} baseline_s={w0:.2f}"
    )


if __name__ == "__main__":
    main()
