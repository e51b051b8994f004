"""S3 prefixes as archive sources and output destinations for `omnimedia caption`.

A source prefix is mirrored into a local cache (objects already there with the same size are not fetched
again, so a rerun is cheap), captioned like a folder, and outputs can go back to an output prefix."""

from __future__ import annotations

import os
from pathlib import Path

from core.config import Settings
from core.storage import S3Storage
from core.storage.keys import parse_s3_uri


def _split(uri: str) -> tuple[str, str]:
    bucket, prefix = parse_s3_uri(uri if uri.endswith("/") else uri + "/")
    return bucket, prefix


def mirror_prefix(settings: Settings, uri: str, cache_root: Path) -> Path:
    """Download every object under s3://bucket/prefix into cache_root/bucket/prefix; return that folder."""
    bucket, prefix = _split(uri)
    storage = S3Storage(settings)
    local_root = (cache_root / bucket / prefix).resolve()
    local_root.mkdir(parents=True, exist_ok=True)
    for key in storage.list(prefix, bucket=bucket):
        rel = key[len(prefix) :]
        dest = (local_root / rel).resolve()
        if not rel or key.endswith("/") or not dest.is_relative_to(local_root):
            continue  # folder markers and keys that would escape the cache
        size = storage.size(key, bucket=bucket)
        if dest.is_file() and dest.stat().st_size == size:
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        storage.download(key, part, bucket=bucket)
        os.replace(part, dest)
    return local_root


def upload_folder(settings: Settings, folder: Path, uri: str) -> int:
    """Upload every file under folder to s3://bucket/prefix/<relative path>; return the count."""
    bucket, prefix = _split(uri)
    storage = S3Storage(settings)
    count = 0
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.name.endswith(".part"):
            storage.client.upload_file(str(path), bucket, prefix + path.relative_to(folder).as_posix())
            count += 1
    return count
