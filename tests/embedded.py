"""Point the process-wide settings at a fresh embedded setup (SQLite + local folder + in-process worker)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest


def clear_caches() -> None:
    from core import config, db, storage

    config.get_settings.cache_clear()
    db.get_engine.cache_clear()
    db.get_sessionmaker.cache_clear()
    storage.get_storage.cache_clear()


def use_embedded(monkeypatch: pytest.MonkeyPatch, data_dir: Path, model: Path, **extra: str) -> None:
    from core import migrate
    from core.config import get_settings

    env = {
        "OMNIMEDIA_MODE": "embedded",
        "OMNIMEDIA_DATA_DIR": str(data_dir),
        "OMNIMEDIA_MODEL": str(model),
        "OMNIMEDIA_MAX_NEW_TOKENS_CAP": "6",
        "OMNIMEDIA_TALKER_MAX_NEW_TOKENS": "30",
        "OMNIMEDIA_TALKER_DO_SAMPLE": "false",
        **extra,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    clear_caches()
    migrate.upgrade(get_settings().resolved_database_url())


@contextmanager
def embedded_engine(monkeypatch: pytest.MonkeyPatch, data_dir: Path, model: Path, **extra: str) -> Iterator[Any]:
    """An embedded setup and its parts: (settings, sessions, storage, the loaded engine), caches cleared after."""
    use_embedded(monkeypatch, data_dir, model, **extra)
    from core.config import get_settings
    from core.db import get_sessionmaker
    from core.storage import get_storage
    from models.loader import load_engine

    settings = get_settings()
    yield settings, get_sessionmaker(), get_storage(), load_engine(settings.engine_config())
    clear_caches()
