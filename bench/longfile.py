"""A 75-minute speech MP3 through `omnimedia caption` on the tiny model (embedded default): peak memory of planning
+ transcription (goal <= 1 GB), and a rerun after kill -9 at half the segments against a full run's time (goal
<= 60%: planning streams beside the engine and is stored with each segment, so a run killed at half of a full
run's time has kept about half of the file's planning and segments, and the rerun redoes neither).
A run's fixed cost (process start, imports, model and VAD load: a run on a 2-second file) bounds what any resume can
save: killed at half of a full run's wall time, only (full - startup) / 2 of its work was done, so even a perfect
resume takes (work + 3 x startup) / (2 x full) of a full run; the bench prints that floor, and the ratio of the
work alone (rerun - startup) / (full - startup) for a kill at half of the work. Last line: peak_rss_mb, full_s,
rerun_s, their ratio, startup_s, floor, work_ratio."""

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

        short = tmp / "short"
        short.mkdir()
        speech(short / "hello.wav", "A short file.", 0.5)
        started = time.perf_counter()
        status, _ = finish(caption(short, tmp / "startup", env))
        startup_s = time.perf_counter() - started
        assert status == 0, (tmp / "startup.log").read_text()[-3000:]

        started = time.perf_counter()
        status, peak_mb = finish(caption(archive, tmp / "full", env))
        full_s = time.perf_counter() - started
        assert status == 0, (tmp / "full.log").read_text()[-3000:]
        done, planned = progress(tmp / "full")
        assert done == planned > 1, (done, planned)

        rerun_s, killed_at, rerun_peak_mb = kill_and_rerun(archive, tmp / "killed", env, full_s / 2)
        work_s = full_s - startup_s
        work_rerun_s, _, _ = kill_and_rerun(archive, tmp / "killed-work", env, startup_s + work_s / 2)
    print(
        f"file={MINUTES:.0f} min, {planned} segments; killed at {killed_at[0]} of {killed_at[1]}; "
        f"rerun peak {rerun_peak_mb:.0f} MB"
    )
    floor = (work_s + 3 * startup_s) / (2 * full_s)
    work_ratio = (work_rerun_s - startup_s) / work_s
    print(
        f"peak_rss_mb={peak_mb:.0f} full_s={full_s:.1f} rerun_s={rerun_s:.1f} ratio={rerun_s / full_s:.2f} "
        f"startup_s={startup_s:.1f} floor={floor:.2f} work_ratio={work_ratio:.2f}"
    )


def kill_and_rerun(
    archive: Path, data: Path, env: dict[str, str], after_s: float
) -> tuple[float, tuple[int, int], float]:
    """Start a run, SIGKILL it `after_s` later, run it again: the rerun's time, the progress the kill left, and
    the rerun's peak memory."""
    run = caption(archive, data, env)
    time.sleep(after_s)
    run.send_signal(signal.SIGKILL)
    finish(run)
    killed_at = progress(data)
    started = time.perf_counter()
    status, peak_mb = finish(caption(archive, data, env))
    assert status == 0, (data.parent / f"{data.name}.log").read_text()[-3000:]
    return time.perf_counter() - started, killed_at, peak_mb


if __name__ == "__main__":
    main()
