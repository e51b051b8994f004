"""200 short files through the embedded `omnimedia caption` with the tiny model, prefetch on against off in the
same run. Prints per-file overhead outside engine time (ms) and the fraction of wall time the engine sat idle
(goal < 5% with prefetch). Wall time runs from the first job's start to the last job's end (model load excluded)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

from models.tiny import build
from tests.support import env_for, ffmpeg, speech

FILES = int(os.environ.get("BENCH_FILES", "200"))


def make_archive(root: Path) -> None:
    root.mkdir(parents=True)
    voices = [speech(root.parent / f"v{i}.wav", text, 0.2) for i, text in enumerate(
        ["One short clip.", "Another sample here.", "Archive file number three.", "The last voice."])]  # fmt: skip
    for i in range(FILES):
        folder = root / f"box{i % 10:02d}"
        folder.mkdir(exist_ok=True)
        ffmpeg("-i", str(voices[i % 4]), "-af", f"volume={0.3 + i / 400:.4f}", str(folder / f"clip{i:04d}.flac"))


def run(archive: Path, data: Path, model: Path, prefetch: int) -> tuple[float, float, int]:
    env = env_for(OMNIMEDIA_DATA_DIR=str(data), OMNIMEDIA_MODEL=str(model), OMNIMEDIA_MAX_NEW_TOKENS_CAP="16")
    cmd = [sys.executable, "-m", "cli", "caption", str(archive), "--task", "transcribe", "--out",
           str(data / "out"), "--json", "--prefetch", str(prefetch)]  # fmt: skip
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=1800)
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
        make_archive(tmp / "archive" / "root")
        results = {}
        for prefetch in (1, 0):
            results[prefetch] = run(tmp / "archive" / "root", tmp / f"data{prefetch}", model, prefetch)
    for prefetch, (wall, engine, count) in results.items():
        print(f"prefetch={prefetch} files={count} wall_s={wall:.2f} engine_s={engine:.2f} "
              f"idle={1 - engine / wall:.3f} overhead_ms_per_file={(wall - engine) / count * 1000:.1f}")  # fmt: skip
    (w1, e1, n1), (w0, e0, _) = results[1], results[0]
    print(
        f"idle_fraction={1 - e1 / w1:.3f} idle_fraction_no_prefetch={1 - e0 / w0:.3f} "
        f"overhead_ms={(w1 - e1) / n1 * 1000:.1f} ratio={w1 / w0:.3f} ours_s={w1:.2f} baseline_s={w0:.2f}"
    )


if __name__ == "__main__":
    main()
