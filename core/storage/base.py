"""The storage interface and its errors, shared by both backends."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol


class StorageError(Exception):
    """A storage operation failed for a reason that may pass (network, server)."""


class ObjectNotFound(StorageError):
    pass


class TooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"upload exceeds the limit of {limit} bytes")
        self.limit = limit


@dataclass(frozen=True)
class Stored:
    key: str
    size: int
    sha256: str


class Storage(Protocol):
    def upload_stream(self, key: str, stream: IO[bytes], max_bytes: int, content_type: str | None = None) -> Stored:
        """Stream into storage in parts (never whole in memory); raise TooLarge past max_bytes."""
        ...

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...

    def get_bytes(self, key: str, bucket: str | None = None) -> bytes: ...

    def read_range(self, key: str, start: int, end: int, bucket: str | None = None) -> bytes:
        """Bytes start..end (inclusive) of an object: an HTTP Range answer, never the whole object in memory."""
        ...

    def download(self, key: str, dest: Path, bucket: str | None = None) -> None: ...

    def size(self, key: str, bucket: str | None = None) -> int | None: ...

    def sha256(self, key: str, bucket: str | None = None) -> str: ...

    def presign_put(self, key: str, expires_s: int, size_bytes: int, content_type: str | None = None) -> str | None:
        """A URL to PUT exactly `size_bytes` to `key` (the length is signed), or None if the backend has none."""
        ...

    def delete(self, key: str) -> None: ...

    def list(self, prefix: str, bucket: str | None = None) -> Iterator[str]: ...

    def ping(self) -> None: ...


def chunks(stream: IO[bytes], size: int) -> Iterator[bytes]:
    while chunk := stream.read(size):
        yield chunk
