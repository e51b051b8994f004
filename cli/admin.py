"""Operator commands: database migrations, API keys, per-tenant quotas, bucket grants and secrets at rest."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm.attributes import flag_modified

from core import grants, migrate, sealed
from core.config import get_settings
from core.db import get_sessionmaker
from core.keys import create_key, revoke_key
from core.quotas import limits_for, set_limits, stored_bytes
from core.schema import ApiKey, Job, TenantWebhookSecret, WebhookEndpoint

db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (each belongs to one tenant).", no_args_is_help=True)
quotas_app = typer.Typer(help="Per-tenant limits (defaults come from OMNIMEDIA_* settings).", no_args_is_help=True)
buckets_app = typer.Typer(
    help="External input buckets a tenant may read (its own tenants/<name>/ in the service bucket needs no grant).",
    no_args_is_help=True,
)
secrets_app = typer.Typer(help="Secrets at rest (webhook signing secrets): keys and rotation.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _local_schema() -> None:
    """Key, quota and grant commands work on a fresh embedded data folder too."""
    migrate.prepare_local(get_settings().resolved_database_url())


for _group in (keys_app, quotas_app, buckets_app, secrets_app):
    _group.callback()(_local_schema)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Upgrade the database schema."""
    migrate.upgrade(get_settings().resolved_database_url(), revision)
    console.print(f"database at {revision}")


@db_app.command("downgrade")
def db_downgrade(revision: str = "base") -> None:
    """Downgrade the database schema."""
    migrate.downgrade(get_settings().resolved_database_url(), revision)
    console.print(f"database at {revision}")


@secrets_app.command("new-key")
def secrets_new_key() -> None:
    """Print a new key for OMNIMEDIA_SECRET_KEY (Fernet: 32 random bytes, base64)."""
    print(sealed.new_key())


@secrets_app.command("rotate")
def secrets_rotate() -> None:
    """Re-encrypt every stored secret under OMNIMEDIA_SECRET_KEY (old keys in OMNIMEDIA_SECRET_KEYS_OLD still
    decrypt); plaintext rows from before encryption are encrypted too."""
    with get_sessionmaker()() as session:
        holders = [*session.scalars(select(WebhookEndpoint)), *session.scalars(select(TenantWebhookSecret))]
        for holder in holders:  # loading decrypts; marking the columns changed writes them under the current key
            flag_modified(holder, "secret")
            if holder.previous_secret is not None:
                flag_modified(holder, "previous_secret")
        session.commit()
    err.print(f"{len(holders)} signing secrets encrypted under the current key")


@keys_app.command("create")
def keys_create(tenant: Annotated[str, typer.Option(help="tenant the key acts for")]) -> None:
    """Create an API key; the key is printed once and only its hash is stored."""
    with get_sessionmaker()() as session:
        try:
            key, token = create_key(session, tenant)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
    err.print(f"key {key.id} for tenant {tenant} (shown once; store it now):")
    print(token)


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke an API key by id."""
    with get_sessionmaker()() as session:
        if not revoke_key(session, key_id):
            err.print(f"no active key {key_id}")
            raise typer.Exit(1)
    err.print(f"key {key_id} revoked")


@keys_app.command("list")
def keys_list() -> None:
    """List keys (ids and tenants; secrets are never stored)."""
    table = Table("id", "tenant", "created", "revoked")
    with get_sessionmaker()() as session:
        for key in session.scalars(select(ApiKey).order_by(ApiKey.created_at)):
            table.add_row(key.id, key.tenant, f"{key.created_at:%Y-%m-%d %H:%M}", str(key.revoked_at or ""))
    console.print(table)


@quotas_app.command("set")
def quotas_set(
    tenant: str,
    max_active_jobs: Annotated[int | None, typer.Option(min=0, help="queued + running + retrying jobs")] = None,
    max_upload_bytes: Annotated[int | None, typer.Option(min=1, help="bytes per upload")] = None,
    max_storage_bytes: Annotated[int | None, typer.Option(min=0, help="bytes of all uploads (0: no limit)")] = None,
) -> None:
    """Override a tenant's limits; an option left out falls back to the default."""
    with get_sessionmaker()() as session:
        set_limits(session, tenant, max_active_jobs, max_upload_bytes, max_storage_bytes)
        console.print(limits_for(session, get_settings(), tenant))


@quotas_app.command("show")
def quotas_show(tenant: str) -> None:
    """The limits in force for a tenant and its stored bytes."""
    with get_sessionmaker()() as session:
        console.print(limits_for(session, get_settings(), tenant))
        console.print(f"stored_bytes={stored_bytes(session, tenant)}")


@buckets_app.command("grant")
def buckets_grant(
    tenant: str, bucket: str, prefix: Annotated[str, typer.Option(help="only keys under this prefix")] = ""
) -> None:
    """Let a tenant name objects of BUCKET (under --prefix) as job and batch inputs."""
    with get_sessionmaker()() as session:
        try:
            row = grants.grant(session, get_settings(), tenant, bucket, prefix)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
    err.print(f"tenant {tenant} may read s3://{bucket}/{row.prefix}")


@buckets_app.command("revoke")
def buckets_revoke(tenant: str, bucket: str, prefix: Annotated[str, typer.Option()] = "") -> None:
    """Withdraw a grant; jobs not yet started on its objects then fail."""
    with get_sessionmaker()() as session:
        if not grants.revoke(session, tenant, bucket, prefix):
            err.print(f"no grant of s3://{bucket}/{grants.normalise_prefix(prefix)} to {tenant}")
            raise typer.Exit(1)
    err.print(f"revoked s3://{bucket}/{grants.normalise_prefix(prefix)} for {tenant}")


@buckets_app.command("list")
def buckets_list(tenant: Annotated[str | None, typer.Option()] = None) -> None:
    """List grants (all tenants, or one)."""
    table = Table("tenant", "bucket", "prefix", "granted")
    with get_sessionmaker()() as session:
        for row in grants.grants(session, tenant):
            table.add_row(row.tenant, row.bucket, row.prefix or "(whole bucket)", f"{row.created_at:%Y-%m-%d %H:%M}")
    console.print(table)


def review_link(
    job_id: Annotated[str, typer.Argument(help="the job to review")],
    api_url: Annotated[str, typer.Option(help="where the API answers")] = "http://127.0.0.1:8000",
    hours: Annotated[float, typer.Option(help="how long the link works", min=0.1, max=168)] = 24,
    open_browser: Annotated[bool, typer.Option("--open", help="open it in the browser")] = False,
) -> None:
    """A signed link to a finished job's review page (play the media, follow and correct its captions); on the
    embedded default it opens without an API key (`omnimedia serve` must be running)."""
    import webbrowser

    from core.review import issue_link

    with get_sessionmaker()() as session:
        job = session.get(Job, job_id)
        if job is None or job.result is None:
            err.print(f"no finished job {job_id!r}")
            raise typer.Exit(1)
    token, expires = issue_link(get_settings(), job.tenant, job.id, hours * 3600, "omnimedia review")
    url = f"{api_url.rstrip('/')}/review/{token}"
    print(url)
    err.print(f"valid until {expires:%Y-%m-%d %H:%M} UTC")
    if open_browser:
        webbrowser.open(url)
