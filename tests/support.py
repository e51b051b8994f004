"""Helpers for tests and benchmarks: free ports, real servers on loopback, generated media."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
S3_KEY, S3_SECRET = "omnimedia-test", "omnimedia-test-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def supervised_workers(supervisor_pid: int) -> list[psutil.Process]:
    """The `workers.main` processes an `omnimedia worker` supervisor runs now (one per slot)."""
    found = []
    for proc in psutil.Process(supervisor_pid).children():
        try:
            if "workers.main" in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


def wait_for(predicate, timeout_s: float, what: str, every_s: float = 0.1):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def stop(proc: subprocess.Popen, timeout_s: float = 30) -> None:  # type: ignore[type-arg]
    """SIGTERM, wait, then SIGKILL a child process that does not exit in time."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def http_ok(url: str, client: object = None) -> bool:
    """True once GET url answers 200 (connection errors count as not yet)."""
    import httpx

    try:
        getter = client.get if isinstance(client, httpx.Client) else httpx.get
        return bool(getter(url, timeout=2).status_code == 200)
    except httpx.HTTPError:
        return False


def weed_binary() -> str:
    path = Path(sys.executable).parent / "weed"
    return str(path) if path.exists() else shutil.which("weed") or "weed"


@dataclass
class SeaweedS3:
    endpoint: str
    access_key: str
    secret_key: str

    def client(self):  # type: ignore[no-untyped-def]
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )


@contextmanager
def seaweedfs(workdir: Path) -> Iterator[SeaweedS3]:
    """SeaweedFS `weed mini` on loopback with S3 auth on, every port chosen free."""
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    config = workdir / "s3.json"
    identity = {
        "name": "admin",
        "credentials": [{"accessKey": S3_KEY, "secretKey": S3_SECRET}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }
    config.write_text(json.dumps({"identities": [identity]}))
    s3_port = free_port()
    ports = {
        name: free_port()
        for name in (
            "s3.port.grpc",
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "admin.port",
            "admin.port.grpc",
            "metricsPort",
            "s3.port.iceberg",
        )
    }
    cmd = [
        weed_binary(),
        "mini",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={data}",
        f"-s3.port={s3_port}",
        f"-s3.config={config}",
        "-master.telemetry=false",
        "-webdav=false",
    ]
    cmd += [f"-{name}={port}" for name, port in ports.items()]
    log = (workdir / "weed.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    s3 = SeaweedS3(f"http://127.0.0.1:{s3_port}", S3_KEY, S3_SECRET)
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"weed exited: {(workdir / 'weed.log').read_text()[-2000:]}")
            try:
                s3.client().list_buckets()
                return True
            except Exception:
                return False

        wait_for(ready, 60, "SeaweedFS S3", 0.3)
        yield s3
    finally:
        stop(proc)
        log.close()


@contextmanager
def postgres_database(admin_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/test") -> Iterator[str]:
    """A fresh, empty Postgres database for one test session; dropped afterwards."""
    from sqlalchemy import create_engine, text

    name = f"omnimedia_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class PrivateRedis:
    """A redis-server of our own on a free loopback port, without persistence: a test may kill it (its queued
    messages vanish, as on a restart without AOF) and start it again on the same port."""

    workdir: Path
    port: int = field(default_factory=lambda: free_port())
    proc: subprocess.Popen | None = None  # type: ignore[type-arg]

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        import redis

        log = (self.workdir / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

        def up() -> bool:
            try:
                return bool(redis.Redis(port=self.port, socket_timeout=1).ping())
            except redis.RedisError:
                return False

        wait_for(up, 20, "the private redis-server")

    def kill(self) -> None:
        """kill -9: every key is gone."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@contextmanager
def private_redis(workdir: Path) -> Iterator[PrivateRedis]:
    workdir.mkdir(parents=True, exist_ok=True)
    server = PrivateRedis(workdir)
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None:
            stop(server.proc)


@dataclass
class PrivatePostgres:
    """A Postgres cluster of our own (initdb) on a free loopback port, so a test may crash and restart it."""

    data: Path
    port: int = field(default_factory=lambda: free_port())

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def pg_ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
        run([*_as_postgres(), "pg_ctl", "-D", str(self.data), "-o", options, "-w", "-l", str(self.data / "log"), *args])

    def crash_restart(self) -> None:
        """`pg_ctl -m immediate restart`: every backend dies at once and the server recovers from its WAL."""
        self.pg_ctl("-m", "immediate", "restart")


def _as_postgres() -> list[str]:
    """initdb and the server refuse to run as root: run them as the postgres user there."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="omnimedia-pg-"))  # outside pytest's root-only tmp tree
    data = root / "data"
    try:
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
        run([*_as_postgres(), "initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"])
        server = PrivatePostgres(data)
        server.pg_ctl("start")
        try:
            yield server
        finally:
            subprocess.run(
                [*_as_postgres(), "pg_ctl", "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(cmd: list[str] | str, **kwargs) -> None:  # type: ignore[no-untyped-def]
    subprocess.run(cmd, check=True, capture_output=True, shell=isinstance(cmd, str), timeout=300, **kwargs)


def ffmpeg(*args: str) -> None:
    run(["ffmpeg", "-y", "-v", "error", "-nostdin", *args])


def speech(path: Path, text: str, seconds_pause: float = 0.0) -> Path:
    """Real synthetic speech: espeak-ng (22.05 kHz) resampled to 16 kHz, optional trailing pause."""
    raw = path.with_suffix(".raw.wav")
    run(["espeak-ng", "-s", "160", "-w", str(raw), text])
    pad = ["pad", "0", str(seconds_pause)] if seconds_pause else []
    run(["sox", str(raw), "-r", "16000", "-c", "1", str(path), *pad])
    raw.unlink()
    return path


TEST_SECRET_KEY = base64.urlsafe_b64encode(os.urandom(32)).decode()  # the services of one test run share it


def env_for(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIMEDIA_")}
    env["PYTHONPATH"] = str(REPO)
    env["OMNIMEDIA_SECRET_KEY"] = TEST_SECRET_KEY
    env.update(overrides)
    return env


def chromium(url: str, out_dir: Path, name: str) -> str:
    """Render a page in headless Chromium: save a screenshot under out_dir and return the DOM text."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise RuntimeError("chromium is not installed (infra/services.sh installs it)")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={out_dir / ('profile-' + name)}",
        "--window-size=1280,900",
        "--virtual-time-budget=5000",
    ]
    subprocess.run(
        [browser, *flags, f"--screenshot={out_dir / (name + '.png')}", url],
        capture_output=True,
        timeout=120,
        check=False,
    )
    dom = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    return dom.stdout


def stream_until_answered(port: int, head: str, total: int, part: int = 1024 * 1024) -> tuple[int, bytes]:
    """Send a request head, then its body in `part`-byte pieces, reading for an answer after each; return the
    bytes sent before the answer came (or the server closed) and the answer's first bytes."""
    sent, answer = 0, b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode())
        sock.settimeout(0.5)
        while sent < total and not answer:
            try:
                sock.sendall(b"\0" * part)
                sent += part
                answer = sock.recv(4096)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
    return sent, answer


def runner_on(settings: Any, sessions: Any, storage: Any, engine: Any, worker: str) -> Any:
    """A job runner whose pipeline runs on `engine` (a real engine, or one a test wraps to inject a fault)."""
    from core.jobs.runner import JobRunner
    from models.pipeline import pipeline_over

    return JobRunner(settings, sessions, storage, pipeline_over(engine, settings.engine_config()), worker)


def api_key(env: dict[str, str], tenant: str) -> str:
    """A new API key for `tenant`, made with the real CLI in the service's environment."""
    cmd = [sys.executable, "-m", "cli", "keys", "create", "--tenant", tenant]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=True).stdout.strip()


@dataclass
class RunningApi:
    base: str
    pid: int


@contextmanager
def running_api(env: dict[str, str], log_path: Path) -> Iterator[RunningApi]:
    """The API on a real uvicorn process on a free port, ready (healthz), stopped afterwards; its output in log_path."""
    port = free_port()
    with log_path.open("wb") as log:
        cmd = [sys.executable, "-m", "uvicorn", "api.app:app", "--port", str(port)]
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(lambda: http_ok(f"{base}/healthz"), 60, "the API")
            yield RunningApi(base, proc.pid)
        finally:
            stop(proc)


def long_speech(root: Path, minutes: float, name: str = "long.flac") -> Path:
    """Minutes of espeak-ng speech with pauses (two sentences looped), as FLAC: a file long enough to plan in
    several scan windows."""
    parts = [
        speech(root / "long-a.wav", "The archive holds many hours of recorded speech from meetings.", 0.8),
        speech(root / "long-b.wav", "Each file is split into segments at natural pauses.", 1.3),
    ]
    block = root / "long-block.wav"
    ffmpeg("-i", str(parts[0]), "-i", str(parts[1]), "-filter_complex", "concat=n=2:v=0:a=1", str(block))
    out = root / name
    ffmpeg("-stream_loop", "-1", "-i", str(block), "-t", str(minutes * 60), "-c:a", "flac", str(out))
    return out


def spy_scan_starts(monkeypatch: Any) -> list[float]:
    """Where each planning scan starts reading a file's audio (models.segments' AudioReader, spied)."""
    from models import segments
    from models.decoding import AudioReader

    starts: list[float] = []

    class Spy(AudioReader):
        def __init__(self, path: Path, start_s: float = 0.0, *args: Any, **kwargs: Any) -> None:
            starts.append(start_s)
            super().__init__(path, start_s, *args, **kwargs)

    monkeypatch.setattr(segments, "AudioReader", Spy)
    return starts


def video_with_audio(audio: Path, out: Path) -> Path:
    """A test pattern as long as `audio`, with it as the soundtrack: H.264/AAC MP4 (what headless Chromium plays)."""
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=25",
        "-i",
        str(audio),
        "-shortest",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        str(out),
    )
    return out
