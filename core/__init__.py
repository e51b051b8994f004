"""What the entry points (api, workers, cli) share, one module or sub-package per concern:

config (the one Settings), db and schema, states (every state and event name), errors (refusals), owned (the
tenant-scoped lookup), storage/ (interface, S3 and local backends, key layout), queue (the only publisher),
celery_app, embedded (the in-process executor of the embedded default), jobs/ (state machine, submit, runner,
outputs, failures, finished, reconcile), webhooks/ (outbox, delivery, signing, sweeper, endpoints, SSRF guard),
archive/ (walk, caption, remote, S3 mirror), uploads, batches, keys, grants (which objects a tenant may name),
quotas, idempotency, maintenance, metrics, stats, migrate. Imports models/, never an entry point."""
