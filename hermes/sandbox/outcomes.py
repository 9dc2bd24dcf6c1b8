"""Magic recipients: what the sandbox does with a send, decided by its recipient.

The table in README.md is the contract; `PHONE_SUFFIXES`, `EMAIL_LOCAL_PARTS`
and `PUSH_TOKEN_PREFIXES` below are that table in code.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache

import phonenumbers


class Outcome(StrEnum):
    DELIVERED = "delivered"      # accepted, then a "delivered" receipt
    READ = "read"                # WhatsApp: delivered, then read; elsewhere as delivered
    UNDELIVERED = "undelivered"  # accepted, then a failure receipt
    NO_RECEIPT = "no_receipt"    # accepted, and never confirmed
    SERVER_ERROR = "server_error"  # the provider answers 500
    RATE_LIMITED = "rate_limited"  # the provider answers 429 with Retry-After
    TIMEOUT = "timeout"          # the provider holds the request, then drops it
    BOUNCE = "bounce"            # email: a permanent bounce
    COMPLAINT = "complaint"      # email: delivered, then a complaint
    UNREGISTERED = "unregistered"  # push: the token is no longer registered


# Receipts are sent for these; the others end at the synchronous answer.
FAILS_SYNCHRONOUSLY = frozenset(
    {Outcome.SERVER_ERROR, Outcome.RATE_LIMITED, Outcome.TIMEOUT, Outcome.UNREGISTERED}
)

PHONE_SUFFIXES: dict[str, Outcome] = {
    "0001": Outcome.DELIVERED,
    "0002": Outcome.UNDELIVERED,
    "0003": Outcome.NO_RECEIPT,
    "0004": Outcome.SERVER_ERROR,
    "0005": Outcome.RATE_LIMITED,
    "0006": Outcome.TIMEOUT,
    "0007": Outcome.READ,
}

EMAIL_LOCAL_PARTS: dict[str, Outcome] = {
    "delivered": Outcome.DELIVERED,
    "success": Outcome.DELIVERED,
    "bounce": Outcome.BOUNCE,
    "complaint": Outcome.COMPLAINT,
    "noreceipt": Outcome.NO_RECEIPT,
    "error500": Outcome.SERVER_ERROR,
    "throttle": Outcome.RATE_LIMITED,
    "timeout": Outcome.TIMEOUT,
}

PUSH_TOKEN_PREFIXES: dict[str, Outcome] = {
    "unregistered": Outcome.UNREGISTERED,
    "error500": Outcome.SERVER_ERROR,
    "throttle": Outcome.RATE_LIMITED,
    "timeout": Outcome.TIMEOUT,
}


@lru_cache(maxsize=65536)
def normalise_phone(raw: str) -> str | None:
    """E.164 form of a number valid under libphonenumber rules, else None.

    Accepts the leading "+" optional (WhatsApp's `to` takes either form) but
    nothing else: no spaces, no national format, as the providers' APIs do.
    """
    digits = raw[1:] if raw.startswith("+") else raw
    if not digits.isdigit() or not 6 <= len(digits) <= 15 or digits[0] == "0":
        return None
    try:
        number = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return "+" + digits


def for_phone(e164: str) -> Outcome:
    return PHONE_SUFFIXES.get(e164[-4:], Outcome.DELIVERED)


def for_email(address: str) -> Outcome:
    local = address.rpartition("@")[0].split("+", 1)[0].lower()
    return EMAIL_LOCAL_PARTS.get(local, Outcome.DELIVERED)


def for_push_token(token: str) -> Outcome:
    for prefix, outcome in PUSH_TOKEN_PREFIXES.items():
        if token.startswith(prefix):
            return outcome
    return Outcome.DELIVERED
