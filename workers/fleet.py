"""One supervised worker process per GPU slot: `omnimedia worker --gpus all|0,1,... [--gpus-per-worker K]`.

Each child is `python -m workers.main --gpu SLOT`, so CUDA_VISIBLE_DEVICES is set in the child before torch is
imported; this parent never imports torch (CUDA is never initialised before a fork). A child that exits
unexpectedly (crash, OOM kill, memory-limit recycle) is restarted after a short pause."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from types import FrameType


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
    """Group GPU ids into slots of `per_worker`; [None] (one CPU worker) when there is no GPU."""
    if per_worker < 1:
        raise ValueError("--gpus-per-worker must be at least 1")
    ids = visible_gpus() if gpus.strip().lower() == "all" else [g.strip() for g in gpus.split(",") if g.strip()]
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
    restarts: int = 0

    def start(self) -> None:
        cmd = [sys.executable, "-m", "workers.main", *self.args]
        env = {**os.environ, "OMNIMEDIA_MODE": "celery"}
        if self.slot is not None:
            cmd.append(f"--gpu={self.slot}")
            env["CUDA_VISIBLE_DEVICES"] = self.slot  # also set from birth, so no library in the child sees all GPUs
        self.proc = subprocess.Popen(cmd, env=env)


def run_fleet(slots: list[str | None], worker_args: list[str], restart_pause_s: float = 2.0) -> int:
    """Start one child per slot and keep them running until SIGTERM/SIGINT; returns the exit code."""
    children = [Child(slot, worker_args) for slot in slots]
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.proc and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        child.start()
    while not stopping:
        time.sleep(0.5)
        for child in children:
            if not stopping and child.proc and child.proc.poll() is not None:
                child.restarts += 1
                print(f"worker for slot {child.slot} exited ({child.proc.returncode}); restarting", file=sys.stderr)
                time.sleep(restart_pause_s)
                child.start()
    for child in children:
        if child.proc:
            try:
                child.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.proc.kill()
    return 0


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="one supervised Celery worker per GPU slot on this node")
    parser.add_argument("--gpus", default="all")
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
