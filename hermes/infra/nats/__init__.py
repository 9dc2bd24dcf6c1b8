"""infra nats package."""
