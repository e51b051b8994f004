"""What the API and the workers share: settings, database, storage, job lifecycle, Celery app, CLI."""
