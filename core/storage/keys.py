"""The storage key layout, owned here: every object of a tenant lives under `tenants/<tenant>/`. Also how an
`s3://bucket/key` reference is read (which of them a tenant may name is core.grants' rule)."""

from __future__ import annotations


def tenant_prefix(tenant: str) -> str:
    return f"tenants/{tenant}/"


def upload_key(tenant: str, upload_id: str) -> str:
    return f"{tenant_prefix(tenant)}uploads/{upload_id}"


def output_key(tenant: str, job_id: str, name: str, attempt: int) -> str:
    """Outputs are scoped by the run's attempt, so a run that lost its lease never overwrites the winner's files;
    the job row points at the keys of the run that committed its success."""
    return f"{tenant_prefix(tenant)}jobs/{job_id}/attempt-{attempt}/{name}"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split s3://bucket/key; raise ValueError when malformed."""
    if not uri.startswith("s3://"):
        raise ValueError("input must be an upload id or an s3://bucket/key URI")
    bucket, _, key = uri[5:].partition("/")
    if not bucket or not key or ".." in key.split("/"):
        raise ValueError(f"malformed S3 URI {uri!r}")
    return bucket, key


def parse_s3_prefix(uri: str) -> tuple[str, str]:
    """Split s3://bucket/prefix/ (the prefix may be empty: the whole bucket); raise ValueError when malformed."""
    if not uri.startswith("s3://"):
        raise ValueError("input_prefix must be an s3://bucket/prefix URI")
    bucket, _, prefix = uri[5:].partition("/")
    if not bucket or ".." in prefix.split("/"):
        raise ValueError(f"malformed S3 URI {uri!r}")
    return bucket, prefix if not prefix or prefix.endswith("/") else prefix + "/"
