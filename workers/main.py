"""Start one Celery worker process: `python -m workers.main [--gpu N] [--queues thinker,talker]`.

GPU pinning happens here, before anything imports torch. A worker that serves the talker queue loads
the talker; others never build it.

A job worker on the threads or solo pool loads its engine here, before it takes a job; one that cannot, or whose
engine dies later (models.errors.EngineDown: the job goes back to the queue), exits with EXIT_ENGINE_DOWN so its
supervisor restarts it with back-off, and health shows the queue's consumer gone meanwhile. (A prefork pool
loads in its child on the first job: loading in this parent would touch the GPU before the fork.)"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from workers.gpu import pin

EXIT_ENGINE_DOWN = 3
ENGINE_DOWN_FILE = "OMNIMEDIA_ENGINE_DOWN_FILE"  # where a task says the engine is down (any pool process)
WORKER_PID = "OMNIMEDIA_WORKER_PID"  # the Celery main process, which a task asks to stop


def load_engine_now() -> str | None:
    """Load this worker's engine before it takes a job; why it could not, or None."""
    from core import metrics
    from core.config import get_settings
    from models.backend import load_or_down
    from models.errors import EngineDown
    from models.loader import load_engine

    engine = load_engine(get_settings().engine_config(), on_batch=metrics.BATCH_SIZE.observe)
    try:
        load_or_down(engine)
    except EngineDown as exc:
        return exc.reason
    return None


def refusal_for(backend: str, pool: str, talker: bool) -> str | None:
    """Why this worker cannot run as configured, or None."""
    if backend != "vllm":
        return None
    if pool == "prefork":
        return (
            "the vLLM backend cannot run in the prefork pool (vLLM starts engine processes, and a prefork child "
            "is daemonic: it may have none); use --pool threads, the default for job queues"
        )
    if talker:
        return (
            "the vLLM backend serves text only and cannot load the talker: serve the talker queue from a "
            "transformers worker (OMNIMEDIA_BACKEND=transformers) on its own GPU slot"
        )
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", default=None, help="GPU id(s) for CUDA_VISIBLE_DEVICES; omit for CPU")
    parser.add_argument("--queues", default="thinker", help="thinker, talker (GPU); webhooks, maintenance (CPU)")
    parser.add_argument("--pool", default="prefork", choices=["prefork", "solo", "threads"])
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--name", default=None, help="worker node name (default gpuN@host or cpu@host)")
    parser.add_argument("--beat", action="store_true", help="also run the reconciler schedule (one per cluster)")
    parser.add_argument("--loglevel", default="INFO")
    args = parser.parse_args(argv)

    queues = [q.strip() for q in args.queues.split(",") if q.strip()]
    name = pin(args.gpu, queues)
    if "talker" in queues:
        os.environ["OMNIMEDIA_ENABLE_TALKER"] = "true"
    os.environ.setdefault("OMNIMEDIA_MODE", "celery")

    from core.config import get_settings

    settings = get_settings()
    refusal = refusal_for(settings.backend, args.pool, bool(settings.enable_talker))
    if refusal:
        parser.exit(2, f"omnimedia worker: {refusal}\n")
    if settings.backend == "vllm":  # vLLM's engine processes must not be forked from a process that touched CUDA
        os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
    if settings.worker_metrics_port and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="omnimedia-metrics-")

    worker_args = [
        "worker",
        f"--queues={','.join(queues)}",
        f"--pool={args.pool}",
        f"--concurrency={args.concurrency}",
        f"--hostname={args.name or name}",
        f"--loglevel={args.loglevel}",
        "--events",
        "--without-gossip",
        "--without-mingle",
    ]
    if args.beat:  # its schedule file in the data folder: the image's /app is not the service user's to write
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        worker_args += ["--beat", f"--schedule={settings.data_dir / 'celerybeat-schedule'}"]
    if settings.backend != "vllm":  # fewer out-of-memory failures from fragmentation (vLLM manages its own pool)
        os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    jobs = bool({"thinker", "talker"} & set(queues))
    if jobs and args.pool != "prefork":
        failed = load_engine_now()
        if failed:
            parser.exit(EXIT_ENGINE_DOWN, f"omnimedia worker: {failed}\n")
    marker = Path(tempfile.mkdtemp(prefix="omnimedia-worker-")) / "engine-down"
    os.environ[ENGINE_DOWN_FILE], os.environ[WORKER_PID] = str(marker), str(os.getpid())
    limit_mb = settings.worker_max_memory_mb
    if limit_mb and args.pool == "prefork":  # recycle the pool process (and its model) past this resident size
        worker_args.append(f"--max-memory-per-child={limit_mb * 1024}")
    code = run_celery(worker_args)
    if marker.exists():
        print(f"omnimedia worker: {marker.read_text()}; exiting for a fresh start", file=sys.stderr)
        raise SystemExit(EXIT_ENGINE_DOWN)
    raise SystemExit(code)


def run_celery(args: list[str]) -> int:
    """Celery's own command line, returning the exit code its worker stopped with. Not app.worker_main or
    app.start: click, run without its standalone mode, returns that code instead of exiting, and both drop it, so a
    worker that stopped on an unrecoverable error (kombu after a Redis kill: 1) exited 0 and its supervisor took
    it for drained."""
    from celery.bin.celery import celery

    code = celery.main(args=["--app", "core.celery_app:app", *args], standalone_mode=False)
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    main()
