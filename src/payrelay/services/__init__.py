"""Use cases: ingest webhooks, process payments, relay the outbox, consume events."""
