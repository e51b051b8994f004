"""The `omnimedia` command line."""

from __future__ import annotations

import html
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from cli import admin
from core import embedded, intake, migrate
from core.config import Settings, get_settings
from core.db import get_sessionmaker
from core.errors import Refused
from core.jobs.outputs import formats_for, render
from core.jobs.runner import run_until_settled
from core.keys import anonymous_allowed
from core.schema import LOCAL_TENANT, Job
from core.states import JobState
from core.storage import get_storage
from core.uploads import store_upload
from models.errors import TaskInputError

app = typer.Typer(help="Turn media into text and speech with Qwen3-Omni.", no_args_is_help=True)
app.add_typer(admin.db_app, name="db")
app.add_typer(admin.keys_app, name="keys")
app.add_typer(admin.quotas_app, name="quotas")
app.add_typer(admin.buckets_app, name="buckets")
app.add_typer(admin.secrets_app, name="secrets")
app.command("review")(admin.review_link)
console = Console()
err = Console(stderr=True)


def _parse_params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return params


@app.command()
def submit(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    task: Annotated[str, typer.Option(help="transcribe, translate, caption_audio, describe_video, ocr, ask, ...")],
    param: Annotated[list[str], typer.Option("--param", "-p", help="task parameter KEY=VALUE (repeatable)")] = [],  # noqa: B006
    wait: Annotated[bool, typer.Option(help="wait for the result")] = True,
    output: Annotated[str, typer.Option("--format", help="json, txt, srt or vtt")] = "txt",
) -> None:
    """Submit one file. On the embedded default the job runs in this process."""
    settings = get_settings()
    if settings.mode == "embedded":
        migrate.prepare_local(settings.resolved_database_url())
    storage = get_storage()
    with get_sessionmaker()() as session, file.open("rb") as fh:
        try:
            upload = store_upload(session, storage, settings, LOCAL_TENANT, file.name, None, fh)
            asked = intake.JobRequest(LOCAL_TENANT, task, upload.id, _parse_params(param), formats=[])
            job, _ = intake.submit_job(session, storage, settings, asked)  # published in celery mode
        except (Refused, TaskInputError) as exc:
            err.print(f"[red]error:[/red] {exc.reason}")
            raise typer.Exit(2) from exc
    err.print(f"job {job.id} queued ({job.task} on {file.name})")
    if settings.mode == "embedded":
        run_until_settled(embedded.start(settings).worker.runner(), job.id)
    else:
        if not wait:
            console.print(job.id)
            return
    _print_result(_wait(job.id), output)


def _wait(job_id: str, poll_s: float = 0.5) -> Job:
    while True:
        with get_sessionmaker()() as session:
            job = session.get(Job, job_id)
            assert job is not None
            if job.state.final:
                return job
        time.sleep(poll_s)


def _print_result(job: Job, fmt: str) -> None:
    if job.state != JobState.SUCCEEDED:
        err.print(f"[red]job {job.id} {job.state}[/red]: {job.failure_reason or ''}")
        raise typer.Exit(1)
    result = job.result or {}
    if fmt not in formats_for(result):
        err.print(f"no {fmt} output; available: {', '.join(formats_for(result))}")
        raise typer.Exit(1)
    sys.stdout.write(render(job.id, job.task, result, fmt).decode("utf-8"))
    for warning in result.get("warnings") or []:
        err.print(f"[yellow]warning:[/yellow] {warning}")
    stored = f"; files in storage: {', '.join(sorted(job.outputs))}" if job.outputs else ""
    err.print(f"job {job.id} succeeded{stored}")


JOB_WORKER_CONCURRENCY = 2


def job_concurrency(settings: Settings) -> int:
    """Jobs a job worker runs at once: two on the transformers engine (one in the engine, the next one decoding);
    on vLLM as many as the engine runs at once, so a backlog of short files fills it too (segments held decoded
    at once stay bounded: EngineConfig.segments_per_process)."""
    vllm = settings.backend == "vllm"
    return max(settings.vllm_max_num_seqs, JOB_WORKER_CONCURRENCY) if vllm else JOB_WORKER_CONCURRENCY


@app.command()
def caption(
    source: Annotated[str, typer.Argument(help="a folder of media (walked recursively) or s3://bucket/prefix")],
    task: Annotated[str, typer.Option(help="caption_audio, transcribe, describe_video, ...")] = "caption_audio",
    out: Annotated[
        str, typer.Option("--out", help="output folder or s3://bucket/prefix (mirrors the source)")
    ] = "captions",
    formats: Annotated[str, typer.Option(help="comma-separated: srt, vtt, json, txt")] = "srt,vtt,json",
    param: Annotated[list[str], typer.Option("--param", "-p", help="task parameter KEY=VALUE")] = [],  # noqa: B006
    include_hidden: Annotated[bool, typer.Option(help="also caption hidden files and folders")] = False,
    prefetch: Annotated[int, typer.Option(help="files decoded ahead of the engine (0: off)")] = 1,
    json_output: Annotated[
        bool, typer.Option("--json", help="machine-readable progress, one JSON object a line")
    ] = False,
    server: Annotated[str | None, typer.Option(help="send the work to a running service at this URL")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="OMNIMEDIA_API_KEY", help="API key for --server")] = None,
    speakers: Annotated[
        bool, typer.Option("--speakers", help="who spoke when (transcribe): speakers on words, cues and RTTM")
    ] = False,
    num_speakers: Annotated[int | None, typer.Option(min=1, max=32, help="exactly this many speakers")] = None,
    min_speakers: Annotated[int | None, typer.Option(min=1, max=32, help="at least this many speakers")] = None,
    max_speakers: Annotated[int | None, typer.Option(min=1, max=32, help="at most this many speakers")] = None,
    subtitle_languages: Annotated[
        str | None, typer.Option(help="transcribe: also translated tracks, e.g. de,fr (NAME.de.srt beside NAME.srt)")
    ] = None,
) -> None:
    """Caption a whole folder, resumably: rerunning the same command redoes nothing finished."""
    from cli.progress import ProgressView
    from core.archive.caption import FORMATS, CaptionOptions, CaptionRun

    chosen = tuple(f.strip() for f in formats.split(",") if f.strip())
    if unknown := [f for f in chosen if f not in FORMATS]:
        raise typer.BadParameter(f"unknown format(s) {unknown}; choose from {', '.join(FORMATS)}")
    settings = get_settings()
    if source.startswith("s3://"):
        from core.archive.s3_mirror import mirror_prefix

        err.print(f"mirroring {source} into the local cache")
        folder = mirror_prefix(settings, source, settings.data_dir / "s3-cache")
    else:
        folder = Path(source)
    if not folder.is_dir():
        raise typer.BadParameter(f"{source} is not a folder")
    out_dir = (settings.data_dir / "s3-out" / out[5:]) if out.startswith("s3://") else Path(out)
    params = _parse_params(param)
    bounds = {"num_speakers": num_speakers, "min_speakers": min_speakers, "max_speakers": max_speakers}
    if speakers or any(bounds.values()):
        params.update({"diarize": True, **{k: v for k, v in bounds.items() if v}})
        chosen = chosen if "rttm" in chosen else (*chosen, "rttm")
    if subtitle_languages:
        params["subtitle_languages"] = [code.strip() for code in subtitle_languages.split(",") if code.strip()]
    options = CaptionOptions(task, params, out_dir.resolve(), chosen, include_hidden, prefetch)
    view = ProgressView(json_output, console, err)
    try:
        with view:
            if server:
                from core.archive.remote import RemoteCaptionRun

                outcomes = RemoteCaptionRun(server, api_key, options, view.update).run(folder.resolve())
            else:
                if settings.mode != "embedded":
                    err.print("without --server, caption runs on the embedded default (OMNIMEDIA_MODE=embedded)")
                    raise typer.Exit(2)
                migrate.prepare_local(settings.resolved_database_url())
                runner = embedded.start(settings).worker.runner()
                run = CaptionRun(settings, get_sessionmaker(), get_storage(), runner, options, view.update)
                outcomes = run.run(folder.resolve())
    except RuntimeError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    if out.startswith("s3://"):
        from core.archive.s3_mirror import upload_folder

        err.print(f"uploaded {upload_folder(settings, options.out_dir, out)} output files to {out}")
    view.summary(outcomes, options.out_dir)


@app.command("search")
def search_command(
    query: Annotated[str, typer.Argument(help='e.g. "flood barrier" OR dam -river')],
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    tenant: Annotated[str, typer.Option(help="whose transcripts (the operator's: local)")] = LOCAL_TENANT,
) -> None:
    """Search the transcripts: each hit's file, time, speaker and the words around the match."""
    from core import search

    settings = get_settings()
    migrate.prepare_local(settings.resolved_database_url())
    with get_sessionmaker()() as session:
        hits = search.search(session, tenant, query, limit)
    for hit in hits:
        snippet = re.sub(r"</?mark>", "*", html.unescape(hit.snippet))
        who = f" {hit.speaker}:" if hit.speaker else ""
        console.print(
            f"{hit.file_name or hit.job_id}  {_clock(hit.start)}-{_clock(hit.end)}{who} {snippet}",
            markup=False,
            highlight=False,
        )
    if not hits:
        err.print("no transcript matches")


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes // 60):d}:{int(minutes % 60):02d}:{rest:04.1f}"


@app.command("jobs")
def list_jobs(state: Annotated[str | None, typer.Option(help="filter by state")] = None, limit: int = 20) -> None:
    """List recent jobs."""
    with get_sessionmaker()() as session:
        query = select(Job).order_by(Job.created_at.desc()).limit(limit)
        if state:
            query = query.where(Job.state == state)
        table = Table("id", "task", "state", "progress", "created", "reason")
        for job in session.scalars(query):
            progress = f"{job.segments_done}/{job.segments_planned}" if job.segments_planned else "-"
            table.add_row(
                job.id, job.task, job.state, progress, f"{job.created_at:%Y-%m-%d %H:%M:%S}", job.failure_reason or ""
            )
    console.print(table)


@app.command()
def status(job_id: str) -> None:
    """Show one job as JSON."""
    with get_sessionmaker()() as session:
        job = session.get(Job, job_id)
        if job is None:
            err.print(f"no job {job_id}")
            raise typer.Exit(1)
        fields = (
            "id",
            "task",
            "state",
            "params",
            "input_ref",
            "attempts",
            "failure_class",
            "failure_reason",
            "segments_planned",
            "segments_done",
            "outputs",
        )
        console.print_json(json.dumps({f: getattr(job, f) for f in fields}, default=str))


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the API (and, on the embedded default, an in-process worker)."""
    import uvicorn

    settings = get_settings()
    if settings.mode == "embedded":  # the app's start-up resumes what a previous run left queued or due
        migrate.prepare_local(settings.resolved_database_url())
    with get_sessionmaker()() as session:
        anonymous = anonymous_allowed(session, settings)
    if anonymous and settings.allow_anonymous is None:
        err.print(
            "note: requests without an API key act as tenant 'local' until the first key exists "
            "(`omnimedia keys create --tenant NAME`); from then on every request needs a key"
        )
    elif anonymous:
        err.print("note: OMNIMEDIA_ALLOW_ANONYMOUS=true: requests without an API key act as tenant 'local'")
    uvicorn.run("api.app:app", host=host, port=port, log_level="info")


worker_app = typer.Typer(help="Celery workers on this node: start them (supervised) or drain them.")
app.add_typer(worker_app, name="worker")


@worker_app.callback(invoke_without_command=True)
def worker(
    ctx: typer.Context,
    gpu: Annotated[str | None, typer.Option(help="one GPU id (or ids) for a single worker; omit for CPU")] = None,
    gpus: Annotated[
        str | None, typer.Option(help="'all' or 0,1,...: one worker per slot on this node (default: one CPU worker)")
    ] = None,
    gpus_per_worker: Annotated[int, typer.Option(help="GPUs per worker slot (2 for the BF16 model on 80 GB)")] = 1,
    queues: Annotated[str, typer.Option(help="thinker, talker; webhooks, maintenance on CPU (comma-separated)")] = (
        "thinker"
    ),
    pool: Annotated[
        str | None, typer.Option(help="prefork, threads or solo (default: threads for job queues, else prefork)")
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="jobs at once (default: job queues 2, on vLLM max_num_seqs; else 1)")
    ] = None,
    name: Annotated[str | None, typer.Option(help="node name (one slot; default gpuN@host, QUEUES@host)")] = None,
    beat: Annotated[bool, typer.Option(help="also run the reconciler schedule (once per cluster)")] = False,
) -> None:
    """Start supervised Celery worker processes pinned to GPUs (or the CPU). Every node runs the same command.
    A worker that dies is restarted; SIGTERM (or `omnimedia worker drain`) lets each finish its job and exit."""
    if ctx.invoked_subcommand is not None:
        return
    # A job worker runs two jobs at once on its one engine: while one is in the engine (which serialises them),
    # the next is fetched and decoded, so the accelerator does not wait for storage, media or the database.
    jobs = bool({"thinker", "talker"} & {q.strip() for q in queues.split(",")})
    pool = pool or ("threads" if jobs else "prefork")
    concurrency = concurrency or (job_concurrency(get_settings()) if jobs and pool == "threads" else 1)
    args = [f"--queues={queues}", f"--pool={pool}", f"--concurrency={concurrency}"]
    if beat:
        args.append("--beat")
    if name:
        args.append(f"--name={name}")
    if gpu is not None:  # one slot of these GPU(s)
        gpus, gpus_per_worker = gpu, len([g for g in gpu.split(",") if g.strip()]) or 1
    cmd = [
        sys.executable,
        "-m",
        "workers.fleet",
        f"--gpus={gpus or 'none'}",
        f"--gpus-per-worker={gpus_per_worker}",
        *args,
    ]
    # exec, not a child: signals (SIGTERM from systemd, docker or a test) reach the supervisor directly
    os.execve(sys.executable, cmd, {**os.environ, "OMNIMEDIA_MODE": "celery"})


@worker_app.command("drain")
def worker_drain(
    names: Annotated[list[str] | None, typer.Argument(help="node names (default: every worker on this host)")] = None,
) -> None:
    """Stop workers from taking new jobs; each exits when its current job ends and is not restarted (a rolling
    restart: drain, then start the new version). Same as SIGTERM to `omnimedia worker`, from any machine."""
    from core import control

    asked = control.drain(names)
    if not asked:
        err.print("no live worker answered on this host (give node names: `omnimedia worker drain gpu0@node1`)")
        raise typer.Exit(1)
    for node in asked:
        print(node)


@app.command()
def flower(
    host: str = "127.0.0.1",
    port: int = 5555,
) -> None:
    """Run the Flower dashboard against the broker, with basic auth from OMNIMEDIA_FLOWER_USER/PASSWORD."""
    settings = get_settings()
    if not (settings.flower_user and settings.flower_password):
        err.print(
            "set OMNIMEDIA_FLOWER_USER and OMNIMEDIA_FLOWER_PASSWORD: Flower can revoke tasks and shut workers down"
        )
        raise typer.Exit(2)
    cmd = [sys.executable, "-m", "celery", "-A", "core.celery_app", "flower", f"--address={host}", f"--port={port}"]
    # Flower reads FLOWER_* options from the environment: the password never shows on a command line (ps, /proc).
    auth = f"{settings.flower_user}:{settings.flower_password}"
    os.execve(sys.executable, cmd, {**os.environ, "OMNIMEDIA_MODE": "celery", "FLOWER_BASIC_AUTH": auth})
