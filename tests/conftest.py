"""Shared fixtures: the tiny real checkpoint, generated media, and real Postgres, Redis and SeaweedFS."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.variants import Variant
from tests.media_corpus import good_media
from tests.support import PrivateRedis, SeaweedS3, postgres_database, private_redis, seaweedfs

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from models.fixtures.tiny import build

    return build(tmp_path_factory.mktemp("tiny-instruct"), Variant.INSTRUCT)


@pytest.fixture(scope="session")
def tiny_thinking(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from models.fixtures.tiny import build

    return build(tmp_path_factory.mktemp("tiny-thinking"), Variant.THINKING)


@pytest.fixture(scope="session")
def tiny_captioner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from models.fixtures.tiny import build

    return build(tmp_path_factory.mktemp("tiny-captioner"), Variant.CAPTIONER)


@pytest.fixture(scope="session")
def tiny_aligner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from models.fixtures.tiny_aligner import build_aligner

    return build_aligner(tmp_path_factory.mktemp("tiny-aligner"))


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return good_media(tmp_path_factory.mktemp("media"))


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    with seaweedfs(tmp_path_factory.mktemp("seaweed")) as server:
        yield server


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    with postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    """A redis-server of this test run's own on a free port: two runs on one machine never share a broker."""
    with private_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server
