"""Object storage: one interface, two backends (S3-compatible through boto3, and a local folder)."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from core.config import Settings, get_settings


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
    def upload_stream(self, key: str, stream: BinaryIO, max_bytes: int, content_type: str | None = None) -> Stored:
        """Stream into storage in parts (never whole in memory); raise TooLarge past max_bytes."""
        ...

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...

    def get_bytes(self, key: str, bucket: str | None = None) -> bytes: ...

    def download(self, key: str, dest: Path, bucket: str | None = None) -> None: ...

    def size(self, key: str, bucket: str | None = None) -> int | None: ...

    def sha256(self, key: str, bucket: str | None = None) -> str: ...

    def presign_put(self, key: str, expires_s: int, content_type: str | None = None) -> str | None: ...

    def list(self, prefix: str, bucket: str | None = None) -> Iterator[str]: ...

    def ping(self) -> None: ...


def _chunks(stream: BinaryIO, size: int) -> Iterator[bytes]:
    while chunk := stream.read(size):
        yield chunk


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

    def upload_stream(self, key: str, stream: BinaryIO, max_bytes: int, content_type: str | None = None) -> Stored:
        try:
            return self._upload_stream(key, stream, max_bytes)
        except OSError as exc:
            raise StorageError(f"local storage cannot write {key}: {exc.strerror or exc}") from exc

    def _upload_stream(self, key: str, stream: BinaryIO, max_bytes: int) -> Stored:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        tmp = path.with_suffix(path.suffix + ".part")
        try:
            with tmp.open("wb") as out:
                for chunk in _chunks(stream, self.part_bytes):
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

    def download(self, key: str, dest: Path, bucket: str | None = None) -> None:
        path = self._path(key, bucket)
        if not path.is_file():
            raise ObjectNotFound(key)
        shutil.copyfile(path, dest)

    def size(self, key: str, bucket: str | None = None) -> int | None:
        path = self._path(key, bucket)
        return path.stat().st_size if path.is_file() else None

    def sha256(self, key: str, bucket: str | None = None) -> str:
        digest = hashlib.sha256()
        with self._path(key, bucket).open("rb") as fh:
            for chunk in _chunks(fh, self.part_bytes):
                digest.update(chunk)
        return digest.hexdigest()

    def presign_put(self, key: str, expires_s: int, content_type: str | None = None) -> str | None:
        return None

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


class S3Storage:
    """Any S3-compatible store (AWS, MinIO, R2, SeaweedFS) through boto3 with an endpoint_url."""

    def __init__(self, settings: Settings) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = settings.s3_bucket
        self.part_bytes = max(settings.upload_part_bytes, 5 * 1024**2)
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key,
            aws_secret_access_key=settings.s3_secret_key,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
            ),
        )

    def _wrap(self, exc: Exception, key: str) -> Exception:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound", "NoSuchBucket"):
                return ObjectNotFound(key)
        return StorageError(f"S3 error on {key}: {exc}")

    def ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self.client.create_bucket(Bucket=self.bucket)

    def upload_stream(self, key: str, stream: BinaryIO, max_bytes: int, content_type: str | None = None) -> Stored:
        digest, size = hashlib.sha256(), 0
        extra = {"ContentType": content_type} if content_type else {}
        upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, **extra)
        parts: list[dict[str, Any]] = []
        try:
            for number, chunk in enumerate(_chunks(stream, self.part_bytes), start=1):
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(max_bytes)
                digest.update(chunk)
                part = self.client.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=number, Body=chunk
                )
                parts.append({"PartNumber": number, "ETag": part["ETag"]})
            if not parts:  # S3 needs at least one part
                part = self.client.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=b""
                )
                parts.append({"PartNumber": 1, "ETag": part["ETag"]})
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
            )
        except BaseException as exc:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload["UploadId"])
            if isinstance(exc, TooLarge | KeyboardInterrupt):
                raise
            raise self._wrap(exc, key) from exc  # type: ignore[arg-type]
        return Stored(key, size, digest.hexdigest())

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        except Exception as exc:
            raise self._wrap(exc, key) from exc

    def get_bytes(self, key: str, bucket: str | None = None) -> bytes:
        try:
            return bytes(self.client.get_object(Bucket=bucket or self.bucket, Key=key)["Body"].read())
        except Exception as exc:
            raise self._wrap(exc, key) from exc

    def download(self, key: str, dest: Path, bucket: str | None = None) -> None:
        try:
            self.client.download_file(bucket or self.bucket, key, str(dest))
        except Exception as exc:
            raise self._wrap(exc, key) from exc

    def size(self, key: str, bucket: str | None = None) -> int | None:
        try:
            return int(self.client.head_object(Bucket=bucket or self.bucket, Key=key)["ContentLength"])
        except Exception as exc:
            wrapped = self._wrap(exc, key)
            if isinstance(wrapped, ObjectNotFound):
                return None
            raise wrapped from exc

    def sha256(self, key: str, bucket: str | None = None) -> str:
        digest = hashlib.sha256()
        try:
            body = self.client.get_object(Bucket=bucket or self.bucket, Key=key)["Body"]
            for chunk in body.iter_chunks(self.part_bytes):
                digest.update(chunk)
        except Exception as exc:
            raise self._wrap(exc, key) from exc
        return digest.hexdigest()

    def presign_put(self, key: str, expires_s: int, content_type: str | None = None) -> str | None:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if content_type:
            params["ContentType"] = content_type
        return str(self.client.generate_presigned_url("put_object", Params=params, ExpiresIn=expires_s))

    def list(self, prefix: str, bucket: str | None = None) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket or self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield str(item["Key"])

    def ping(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            raise self._wrap(exc, self.bucket) from exc


def make_storage(settings: Settings) -> Storage:
    if settings.storage_backend == "s3":
        storage = S3Storage(settings)
        storage.ensure_bucket()
        return storage
    return LocalStorage(settings.resolved_storage_root(), settings.upload_part_bytes)


@lru_cache
def get_storage() -> Storage:
    return make_storage(get_settings())


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split s3://bucket/key; raise ValueError when malformed."""
    if not uri.startswith("s3://"):
        raise ValueError("input must be an upload id or an s3://bucket/key URI")
    bucket, _, key = uri[5:].partition("/")
    if not bucket or not key or ".." in key.split("/"):
        raise ValueError(f"malformed S3 URI {uri!r}")
    return bucket, key
