"""The worker supervisor: `omnimedia worker` always runs here, one child process per slot, restarted when it dies.

A slot is a GPU group (`--gpus all|0,1,... [--gpus-per-worker K]`) or the CPU (`--gpus none`: webhooks,
maintenance, CPU jobs). Each child is `python -m workers.main [--gpu SLOT] ...`, so CUDA_VISIBLE_DEVICES is set in
the child before torch is imported; this parent never imports torch (CUDA is never initialised before a fork).

- A child that dies (a crash, an OOM kill, SIGKILL, Celery giving up on a broker it lost) is restarted, after a
  pause that doubles on quick repeated deaths (2 s up to 60 s) and starts over once a child has run a minute.
- A child that exits 0 was asked to stop: Celery's warm shutdown (a remote `shutdown` from `omnimedia worker
  drain`, or SIGTERM sent to the child) takes no new job, finishes the current one and exits 0. It is not
  restarted; the supervisor exits once every child has.
- SIGTERM or SIGINT to the supervisor drains every child the same way and waits for their jobs, however long
  (bound it with the service manager's stop timeout); a second one asks for a cold shutdown (SIGQUIT), whose
  unfinished jobs are redelivered (acks_late) and taken over by lease."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from types import FrameType

FIRST_PAUSE_S = 2.0
MAX_PAUSE_S = 60.0
STABLE_AFTER_S = 60.0
NO_GPU = ("", "none", "cpu")


def visible_gpus() -> list[str]:
    """GPU indices from nvidia-smi (no torch import); empty on a machine without NVIDIA GPUs."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip().isdigit()]


def gpu_slots(gpus: str, per_worker: int = 1) -> list[str | None]:
    """Group GPU ids into slots of `per_worker`; [None] (one CPU worker) for `none` or when there is no GPU."""
    if per_worker < 1:
        raise ValueError("--gpus-per-worker must be at least 1")
    choice = gpus.strip().lower()
    if choice in NO_GPU:
        return [None]
    ids = visible_gpus() if choice == "all" else [g.strip() for g in gpus.split(",") if g.strip()]
    if not ids:
        return [None]
    if len(ids) % per_worker:
        raise ValueError(f"{len(ids)} GPU(s) do not split into slots of {per_worker}")
    return [",".join(ids[i : i + per_worker]) for i in range(0, len(ids), per_worker)]


@dataclass
class Child:
    slot: str | None
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    pause_s: float = FIRST_PAUSE_S
    restart_at: float | None = None  # set while a dead child waits out its pause
    done: bool = False  # exited 0: asked to stop

    def start(self) -> None:
        cmd = [sys.executable, "-m", "workers.main", *self.args]
        env = {**os.environ, "OMNIMEDIA_MODE": "celery"}
        if self.slot is not None:
            cmd.append(f"--gpu={self.slot}")
            env["CUDA_VISIBLE_DEVICES"] = self.slot  # also set from birth, so no library in the child sees all GPUs
        self.proc = subprocess.Popen(cmd, env=env)
        self.started_at = time.monotonic()
        self.restart_at = None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum: int) -> None:
        if self.running() and self.proc is not None:
            self.proc.send_signal(signum)

    def check(self, now: float) -> None:
        """Notice an exit (0: done; otherwise schedule a restart) and restart one whose pause is over."""
        if self.done:
            return
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.restarts += 1
                self.start()
            return
        if self.proc is None or self.proc.poll() is None:
            return
        code = self.proc.returncode
        if code == 0:
            print(f"worker for slot {self.slot or 'cpu'} stopped (drained)", file=sys.stderr)
            self.done = True
            return
        if now - self.started_at >= STABLE_AFTER_S:
            self.pause_s = FIRST_PAUSE_S
        slot = self.slot or "cpu"
        print(f"worker for slot {slot} died ({code}); restarting in {self.pause_s:.0f} s", file=sys.stderr)
        self.restart_at = now + self.pause_s
        self.pause_s = min(self.pause_s * 2, MAX_PAUSE_S)


def run_fleet(slots: list[str | None], worker_args: list[str], tick_s: float = 0.5) -> int:
    """Start one child per slot and keep them running until they are drained; returns the exit code."""
    children = [Child(slot, worker_args) for slot in slots]
    stops = 0

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stops
        stops += 1
        forward = signal.SIGTERM if stops == 1 else signal.SIGQUIT  # warm (drain), then cold
        for child in children:
            child.done = True  # no restart from here on
            child.signal(forward)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        child.start()
    while any(child.running() or not child.done for child in children):
        time.sleep(tick_s)
        now = time.monotonic()
        for child in children:
            child.check(now)
    return 0


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="supervised Celery worker processes, one per slot on this node")
    parser.add_argument("--gpus", default="all", help="all, 0,1,... or none (one CPU worker)")
    parser.add_argument("--gpus-per-worker", type=int, default=1)
    args, worker_args = parser.parse_known_args(argv)
    try:
        slots = gpu_slots(args.gpus, args.gpus_per_worker)
    except ValueError as exc:
        parser.error(str(exc))
    print("starting " + ", ".join(f"gpu {s}" if s else "cpu" for s in slots), file=sys.stderr)
    raise SystemExit(run_fleet(slots, worker_args))


if __name__ == "__main__":
    main()
