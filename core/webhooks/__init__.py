"""Webhooks: events written to an outbox in the transaction that causes them, fanned out to the tenant's
endpoints (and a job's or batch's own webhook_url), delivered with Standard Webhooks signatures and retried on
the Standard Webhooks schedule, every attempt recorded."""
