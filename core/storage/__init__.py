"""Object storage: one interface (`base`), two backends (S3-compatible through boto3 in `s3`, a local folder in
`local`). Where objects live (the key layout, and which buckets a job may read) is decided in `keys`, nowhere else."""

from __future__ import annotations

from functools import lru_cache

from core.config import Settings, get_settings
from core.storage.base import ObjectNotFound, Storage, StorageError, Stored, TooLarge
from core.storage.local import LocalStorage
from core.storage.s3 import S3Storage

__all__ = [
    "LocalStorage",
    "ObjectNotFound",
    "S3Storage",
    "Storage",
    "StorageError",
    "Stored",
    "TooLarge",
    "get_storage",
    "make_storage",
]


def make_storage(settings: Settings) -> Storage:
    if settings.storage_backend == "s3":
        storage = S3Storage(settings)
        storage.ensure_bucket()
        return storage
    return LocalStorage(settings.resolved_storage_root(), settings.upload_part_bytes)


@lru_cache
def get_storage() -> Storage:
    return make_storage(get_settings())
