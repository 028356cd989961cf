"""Platform events built on the outbox: webhooks (dispatcher, deliverer), post-call reports, the live
transcript hub, Prometheus metrics and call-scoped logging. Everything here reads the outbox; nothing
here writes call state."""
