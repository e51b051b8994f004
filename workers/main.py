"""Start one Celery worker process: `python -m workers.main [--gpu N] [--queues thinker,talker]`.

GPU pinning happens here, before anything imports torch. A worker that serves the talker queue loads
the talker; others disable it."""

from __future__ import annotations

import argparse
import os
import tempfile

from workers.gpu import pin


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
    limit_mb = settings.worker_max_memory_mb
    if limit_mb and args.pool == "prefork":  # recycle the pool process (and its model) past this resident size
        worker_args.append(f"--max-memory-per-child={limit_mb * 1024}")
    raise SystemExit(run_celery(worker_args))


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
