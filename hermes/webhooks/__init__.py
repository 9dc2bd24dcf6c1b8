"""Tenant webhooks, signed per Standard Webhooks.

- `enqueue` turns cascade events into one pending delivery per enabled endpoint,
  inside the caller's transaction;
- `WebhookDispatcher` claims due deliveries, signs and POSTs them, and retries on
  the Standard Webhooks schedule;
- `PostgresWebhookStore` backs the `/v1/webhooks/...` API.
"""

from hermes.webhooks.dispatcher import WebhookDispatcher
from hermes.webhooks.enqueue import enqueue
from hermes.webhooks.events import EVENT_TYPES, WebhookEvent
from hermes.webhooks.schedule import MAX_ATTEMPTS, RETRY_SCHEDULE_S
from hermes.webhooks.signing import new_secret, sign

__all__ = [
    "EVENT_TYPES",
    "MAX_ATTEMPTS",
    "RETRY_SCHEDULE_S",
    "WebhookDispatcher",
    "WebhookEvent",
    "enqueue",
    "new_secret",
    "sign",
]
