"""The one place an engine is built: the backend named in the config, loaded once per process and config, and
wrapped in the cross-job batcher when the config asks for it. Workers, the embedded runner and the CLI call it."""

from __future__ import annotations

import threading
from collections.abc import Callable

from models.backend import EngineBackend
from models.batcher import BatchingEngine
from models.engine import Engine, EngineConfig

_ENGINES: dict[EngineConfig, Engine] = {}
_LOCK = threading.Lock()


def _build(config: EngineConfig, on_batch: Callable[[int], None] | None) -> Engine:
    backend: EngineBackend
    if config.backend == "vllm":
        from models.vllm_backend import VllmEngine  # its own image: imported only when asked for

        backend = VllmEngine(config)
    else:
        from models.transformers_backend import TransformersEngine

        backend = TransformersEngine(config)
    backend.on_batch = on_batch  # every batch size, batched across jobs or not
    if config.backend == "vllm":
        # One thread owns vLLM's engine and steps it: every job's prompt joins the running batch at the next step
        from models.stepping import SteppingEngine

        return SteppingEngine(backend)
    if config.batch_max_wait_ms > 0:
        return BatchingEngine(backend, config.max_batch_size, config.batch_max_wait_ms)
    return backend


def load_engine(config: EngineConfig, on_batch: Callable[[int], None] | None = None) -> Engine:
    """The process's engine for this config (weights load on first use); `on_batch` hears each batch size."""
    with _LOCK:
        engine = _ENGINES.get(config)
        if engine is None:
            engine = _ENGINES[config] = _build(config, on_batch)
        return engine


def unload_engine(engine: Engine) -> None:
    """Forget an engine (its weights go with the last reference): one replaced by an engine with the talker."""
    with _LOCK:
        for config in [config for config, held in _ENGINES.items() if held is engine]:
            del _ENGINES[config]
