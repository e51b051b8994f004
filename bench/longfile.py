"""A 75-minute speech MP3 through `omnimedia caption` on the tiny model (embedded default): peak memory of planning
+ transcription (goal <= 1 GB), and a rerun after kill -9 at half the segments against a full run's time (goal
<= 60%: the plan is stored with the job, so the rerun neither decodes the file to re-plan nor redoes a segment).
Last line: peak_rss_mb, full_s, rerun_s and their ratio."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from models.fixtures.tiny import build
from tests.support import env_for, ffmpeg, speech

MINUTES = float(os.environ.get("BENCH_MINUTES", "75"))
SENTENCES = [
    "The archive holds many hours of recorded speech from meetings and lectures.",
    "Each file is split into segments at natural pauses between sentences.",
    "A segment is never longer than the configured limit of five minutes.",
    "Coverage of the whole recording is checked before the result is written.",
]


def make_long_speech(root: Path, minutes: float) -> Path:
    """espeak-ng sentences with pauses, one block looped to `minutes`, as a 64 kb/s MP3."""
    parts = [speech(root / f"s{i}.wav", text, seconds_pause=0.8 + 0.5 * i) for i, text in enumerate(SENTENCES)]
    block = root / "block.wav"
    inputs = [arg for part in parts for arg in ("-i", str(part))]
    ffmpeg(*inputs, "-filter_complex", f"concat=n={len(parts)}:v=0:a=1", str(block))
    out = root / "archive" / "lecture.mp3"
    out.parent.mkdir()
    ffmpeg(
        "-stream_loop", "-1", "-i", str(block), "-t", str(minutes * 60), "-c:a", "libmp3lame", "-b:a", "64k", str(out)
    )
    return out


def caption(archive: Path, data: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "cli",
        "caption",
        str(archive),
        "--task",
        "transcribe",
        "--out",
        str(data / "out"),
        "--formats",
        "srt,json",
    ]
    log = (data.parent / f"{data.name}.log").open("ab")
    return subprocess.Popen(cmd, env={**env, "OMNIMEDIA_DATA_DIR": str(data)}, stdout=log, stderr=subprocess.STDOUT)


def finish(proc: subprocess.Popen[bytes]) -> tuple[int, float]:
    """Wait for the run; its exit status and peak resident memory in MB."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024


def progress(data: Path) -> tuple[int, int]:
    """(segments done, segments planned) of the run's one job, read from its SQLite database."""
    try:
        with sqlite3.connect(data / "omnimedia.db", timeout=5) as db:
            row = db.execute("SELECT segments_done, coalesce(segments_planned, 0) FROM jobs").fetchone()
    except sqlite3.Error:
        return 0, 0
    return (int(row[0]), int(row[1])) if row else (0, 0)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = build(tmp / "tiny")
        archive = make_long_speech(tmp, MINUTES).parent
        env = env_for(
            OMNIMEDIA_MODEL=str(model),
            OMNIMEDIA_MAX_NEW_TOKENS_CAP="8",
            OMNIMEDIA_LEASE_S="5",
            TOKENIZERS_PARALLELISM="false",
        )

        started = time.perf_counter()
        status, peak_mb = finish(caption(archive, tmp / "full", env))
        full_s = time.perf_counter() - started
        assert status == 0, (tmp / "full.log").read_text()[-3000:]
        done, planned = progress(tmp / "full")
        assert done == planned > 1, (done, planned)

        run = caption(archive, tmp / "killed", env)
        while (step := progress(tmp / "killed"))[0] < max(step[1] // 2, 1):
            time.sleep(0.2)
        run.send_signal(signal.SIGKILL)
        finish(run)
        killed_at = progress(tmp / "killed")
        started = time.perf_counter()
        status, rerun_peak_mb = finish(caption(archive, tmp / "killed", env))
        rerun_s = time.perf_counter() - started
        assert status == 0, (tmp / "killed.log").read_text()[-3000:]
    print(
        f"file={MINUTES:.0f} min, {planned} segments; killed at {killed_at[0]} of {killed_at[1]}; "
        f"rerun peak {rerun_peak_mb:.0f} MB"
    )
    print(f"peak_rss_mb={peak_mb:.0f} full_s={full_s:.1f} rerun_s={rerun_s:.1f} ratio={rerun_s / full_s:.2f}")


if __name__ == "__main__":
    main()
