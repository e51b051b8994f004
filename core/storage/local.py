"""Storage in a folder on disk: the embedded default."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from core.storage.base import ObjectNotFound, StorageError, Stored, TooLarge, chunks


class LocalStorage:
    """A folder on disk; keys are relative paths inside it."""

    def __init__(self, root: Path, part_bytes: int = 8 * 1024**2) -> None:
        self.root = root.resolve()
        self.part_bytes = part_bytes
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str, bucket: str | None = None) -> Path:
        if bucket is not None:
            raise ObjectNotFound("the local storage backend has no buckets")
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ObjectNotFound(f"invalid key {key!r}")
        return path

    def upload_stream(self, key: str, stream: IO[bytes], max_bytes: int, content_type: str | None = None) -> Stored:
        try:
            return self._upload_stream(key, stream, max_bytes)
        except OSError as exc:
            raise StorageError(f"local storage cannot write {key}: {exc.strerror or exc}") from exc

    def _upload_stream(self, key: str, stream: IO[bytes], max_bytes: int) -> Stored:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        tmp = path.with_suffix(path.suffix + ".part")
        try:
            with tmp.open("wb") as out:
                for chunk in chunks(stream, self.part_bytes):
                    size += len(chunk)
                    if size > max_bytes:
                        raise TooLarge(max_bytes)
                    digest.update(chunk)
                    out.write(chunk)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
        return Stored(key, size, digest.hexdigest())

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(path.suffix + ".part")
            tmp.write_bytes(data)
            tmp.replace(path)
        except OSError as exc:
            raise StorageError(f"local storage cannot write {key}: {exc.strerror or exc}") from exc

    def get_bytes(self, key: str, bucket: str | None = None) -> bytes:
        path = self._path(key, bucket)
        if not path.is_file():
            raise ObjectNotFound(key)
        return path.read_bytes()

    def read_range(self, key: str, start: int, end: int, bucket: str | None = None) -> bytes:
        path = self._path(key, bucket)
        if not path.is_file():
            raise ObjectNotFound(key)
        with path.open("rb") as source:
            source.seek(start)
            return source.read(max(0, end - start + 1))

    def download(self, key: str, dest: Path, bucket: str | None = None) -> None:
        path = self._path(key, bucket)
        if not path.is_file():
            raise ObjectNotFound(key)
        shutil.copyfile(path, dest)

    def size(self, key: str, bucket: str | None = None) -> int | None:
        try:
            path = self._path(key, bucket)
        except ObjectNotFound:
            return None
        return path.stat().st_size if path.is_file() else None

    def sha256(self, key: str, bucket: str | None = None) -> str:
        digest = hashlib.sha256()
        with self._path(key, bucket).open("rb") as fh:
            for chunk in chunks(fh, self.part_bytes):
                digest.update(chunk)
        return digest.hexdigest()

    def presign_put(self, key: str, expires_s: int, size_bytes: int, content_type: str | None = None) -> str | None:
        return None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list(self, prefix: str, bucket: str | None = None) -> Iterator[str]:
        base = self._path(prefix, bucket)
        root = base if base.is_dir() else base.parent
        for path in sorted(root.rglob("*")):
            key = path.relative_to(self.root).as_posix()
            if path.is_file() and key.startswith(prefix):
                yield key

    def ping(self) -> None:
        if not self.root.is_dir():
            raise StorageError(f"storage folder {self.root} is missing")
