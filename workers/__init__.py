"""Celery task bodies, worker start-up and GPU pinning."""
