"""Storage on any S3-compatible store (AWS, MinIO, R2, SeaweedFS) through boto3 with an endpoint_url."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from core.config import Settings
from core.storage.base import ObjectNotFound, StorageError, Stored, TooLarge, chunks

DOWNLOAD_CHUNK_BYTES = 1024 * 1024


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

    def upload_stream(self, key: str, stream: IO[bytes], max_bytes: int, content_type: str | None = None) -> Stored:
        digest, size = hashlib.sha256(), 0
        extra = {"ContentType": content_type} if content_type else {}
        upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, **extra)
        parts: list[dict[str, Any]] = []
        try:
            for number, chunk in enumerate(chunks(stream, self.part_bytes), start=1):
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

    def read_range(self, key: str, start: int, end: int, bucket: str | None = None) -> bytes:
        try:
            found = self.client.get_object(Bucket=bucket or self.bucket, Key=key, Range=f"bytes={start}-{end}")
            return bytes(found["Body"].read())
        except Exception as exc:
            raise self._wrap(exc, key) from exc

    def download(self, key: str, dest: Path, bucket: str | None = None) -> None:
        """One streamed GET (the transfer manager's HEAD, threads and ranged parts cost more than they save on
        the media files of one job, read over a LAN)."""
        try:
            body = self.client.get_object(Bucket=bucket or self.bucket, Key=key)["Body"]
            with dest.open("wb") as out:
                for chunk in body.iter_chunks(DOWNLOAD_CHUNK_BYTES):
                    out.write(chunk)
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

    def presign_put(self, key: str, expires_s: int, size_bytes: int, content_type: str | None = None) -> str | None:
        # Content-Length is signed: the store refuses a PUT of any other size (SignatureDoesNotMatch).
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "ContentLength": size_bytes}
        if content_type:
            params["ContentType"] = content_type
        return str(self.client.generate_presigned_url("put_object", Params=params, ExpiresIn=expires_s))

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            raise self._wrap(exc, key) from exc

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
