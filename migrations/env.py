"""Alembic environment: the URL comes from the caller (core.migrate) or the settings."""

from __future__ import annotations

from alembic import context

from core.db import make_engine
from core.schema import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url")
if not url:
    from core.config import get_settings

    url = get_settings().resolved_database_url()


def run_offline() -> None:
    context.configure(url=url, target_metadata=metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
