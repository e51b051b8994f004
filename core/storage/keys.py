"""The storage key layout, owned here: every object of a tenant lives under `tenants/<tenant>/`. Also how an
`s3://bucket/key` reference is read, and which buckets a job may read its input from."""

from __future__ import annotations

from core.config import Settings


def tenant_prefix(tenant: str) -> str:
    return f"tenants/{tenant}/"


def upload_key(tenant: str, upload_id: str) -> str:
    return f"{tenant_prefix(tenant)}uploads/{upload_id}"


def output_key(tenant: str, job_id: str, name: str) -> str:
    return f"{tenant_prefix(tenant)}jobs/{job_id}/{name}"


def input_bucket_allowed(settings: Settings, bucket: str) -> bool:
    """The service bucket, and the buckets an operator listed in OMNIMEDIA_ALLOWED_INPUT_BUCKETS."""
    return bucket == settings.s3_bucket or bucket in settings.allowed_input_buckets


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split s3://bucket/key; raise ValueError when malformed."""
    if not uri.startswith("s3://"):
        raise ValueError("input must be an upload id or an s3://bucket/key URI")
    bucket, _, key = uri[5:].partition("/")
    if not bucket or not key or ".." in key.split("/"):
        raise ValueError(f"malformed S3 URI {uri!r}")
    return bucket, key
