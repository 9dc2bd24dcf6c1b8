"""What every provider module shares: the context it runs in and small helpers."""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from hermes.sandbox.http import Response, Router
from hermes.sandbox.receipts import ReceiptDispatcher
from hermes.sandbox.state import SandboxState


@dataclass(slots=True)
class Context:
    state: SandboxState
    receipts: ReceiptDispatcher
    router: Router
    base_url: str  # e.g. http://127.0.0.1:8025, known once the socket is bound


async def held(ctx: Context) -> Response:
    """A "timeout": hold the request past any sane client timeout, then drop it."""
    await asyncio.sleep(ctx.state.config.timeout_hold)
    return Response(0, close=True)


@lru_cache(maxsize=1024)
def basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def hex_id(nbytes: int = 16) -> str:
    return secrets.token_hex(nbytes)


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_millis(moment: datetime) -> str:
    """2026-11-27T19:47:20.123Z, the timestamp form AWS uses."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
