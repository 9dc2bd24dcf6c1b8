"""Admin tokens: the platform operator's credential, separate from every tenant key."""

from __future__ import annotations

import uuid

import psycopg

from hermes.tenancy.secrets import digest, display_prefix, new_admin_token


def create_admin_token(database_url: str) -> str:
    """Mint a token, store only its digest, and return the token (shown once)."""
    token = new_admin_token()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO admin_tokens (id, prefix, token_hash) VALUES (%s, %s, %s)",
            (uuid.uuid4(), display_prefix(token), digest(token)))
    return token
