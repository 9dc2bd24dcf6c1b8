"""Log records as text or as one JSON object per line, with the message and tenant in hand.

`bind(message_id, tenant_id)` stores the ids in context variables: asyncio gives each
task (each API request, each delivery job) its own copy, so a log line carries the
ids of the message its task is working on. Secrets are never logged: only ids are
bound, and the formatter adds nothing else from the context.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from typing import Any
from uuid import UUID

import msgspec

from hermes.observability import tracing

MESSAGE_ID: contextvars.ContextVar[UUID | None] = contextvars.ContextVar(
    "hermes_message_id", default=None)
TENANT_ID: contextvars.ContextVar[UUID | None] = contextvars.ContextVar(
    "hermes_tenant_id", default=None)

_FORMATS = ("auto", "json", "text")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def bind(message_id: UUID | None, tenant_id: UUID | None) -> None:
    MESSAGE_ID.set(message_id)
    TENANT_ID.set(tenant_id)


def _iso(created: float) -> str:
    ms = int(created * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{ms:03d}Z"


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "msg"}`, plus `message_id`, `tenant_id`, `trace_id`,
    `request_id` and `exc` when known."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"time": _iso(record.created), "level": record.levelname.lower(),
                               "logger": record.name, "msg": record.getMessage()}
        mid, tid = MESSAGE_ID.get(), TENANT_ID.get()
        if mid is not None:
            out["message_id"] = str(mid)
        if tid is not None:
            out["tenant_id"] = str(tid)
        if tracing.ENABLED:
            # Outside a span, a message's own trace: its trace id is its id.
            trace_id = tracing.current_trace_id() or (mid.hex if mid is not None else None)
            if trace_id is not None:
                out["trace_id"] = trace_id
        rid = getattr(record, "request_id", None)
        if rid is not None:
            out["request_id"] = rid
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return msgspec.json.encode(out).decode()


class TextFormatter(logging.Formatter):
    """The usual text line, with ` message=… tenant=…` appended when known."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        mid, tid = MESSAGE_ID.get(), TENANT_ID.get()
        if mid is not None:
            line += f" message={mid}"
        if tid is not None:
            line += f" tenant={tid}"
        return line


def resolve_format(fmt: str) -> str:
    """`auto` is text on a terminal and JSON otherwise (a container, a log file, a collector)."""
    if fmt not in _FORMATS:
        raise ValueError(f"log_format must be {'|'.join(_FORMATS)}, got {fmt}")
    if fmt == "auto":
        return "text" if sys.stderr.isatty() else "json"
    return fmt


def configure(level: str = "info", fmt: str = "auto") -> str:
    """Replace the root handlers with one on stderr in the chosen format; the format used."""
    chosen = resolve_format(fmt)
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return chosen
