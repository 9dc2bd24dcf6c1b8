"""Receipts of concurrent provider callbacks share their attempt lookups and updates:
each still finds exactly its own attempt, and an attempt only ever moves forward."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg

from hermes.bootstrap import Container
from hermes.infra.postgres.attempts import Answer, PostgresAttemptStore
from hermes.infra.postgres.messages import NewMessage
from tests.integration.flushes import count_flushes


async def _attempts(container: Container, n: int) -> tuple[list[uuid.UUID], uuid.UUID]:
    """`n` attempts answered `accepted` with provider ids SM0.. on one account."""
    tenant = await container.tenants.create_tenant(f"rcpt-{uuid.uuid4().hex[:6]}")
    account = uuid.uuid4()
    now = datetime.now(UTC)
    mid = uuid.uuid4()
    await container.writer.insert_many([NewMessage(
        id=mid, tenant_id=tenant.id, mode="test", status="sending", shard=0, spec_json="{}",
        metadata_json="{}", idempotency_key=None, idempotency_hash=None, send_at=None,
        expires_at=None, next_deadline=None, event_json="{}", created_at=now)])
    ids = [uuid.uuid4() for _ in range(n)]
    async with container.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO provider_accounts (id, tenant_id, name, channel, adapter, mode,"
            " credentials, status) VALUES (%s, %s, 'r', 'sms', 'twilio_sms', 'test', %s,"
            " 'disabled')", (account, tenant.id, b"{}"))
        for i, aid in enumerate(ids):
            await conn.execute(
                "INSERT INTO attempts (id, message_id, tenant_id, step, attempt, channel,"
                " provider_account_id, adapter, status, provider_message_id)"
                " VALUES (%s, %s, %s, 0, %s, 'sms', %s, 'twilio_sms', 'accepted', %s)",
                (aid, mid, tenant.id, i + 1, account, f"SM{i}-{account.hex[:6]}"))
        await conn.execute("UPDATE messages SET finished_at = now() WHERE id = %s", (mid,))
    return ids, account


async def _statuses(container: Container, ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
    async with container.pool.connection() as conn:
        cur = await conn.execute("SELECT id, status FROM attempts WHERE id = ANY(%s)", (ids,))
        return dict(await cur.fetchall())


async def test_concurrent_receipts_find_their_attempts_and_only_move_forward(
    container: Container,
) -> None:
    ids, account = await _attempts(container, 20)
    store = PostgresAttemptStore(container.pool)
    flushes = count_flushes(store._lookups)
    try:
        pmids = [f"SM{i}-{account.hex[:6]}" for i in range(20)]
        found = await asyncio.gather(*(store.by_provider_ids(account, [p]) for p in pmids),
                                     store.by_provider_ids(uuid.uuid4(), pmids[:3]))
        for i, rows in enumerate(found[:20]):
            assert list(rows) == [pmids[i]] and rows[pmids[i]].id == ids[i]
        assert found[20] == {}  # another account's receipts never match these attempts
        assert len(flushes) < 21

        at = datetime.now(UTC)
        rows = [found[i][pmids[i]] for i in range(20)]
        # Each attempt gets `sent` and `delivered` at once (in either order), and the
        # first ten a stale `accepted` too: the furthest wins, nothing moves back.
        moves = []
        for i, row in enumerate(rows):
            pair = [store.advance(row, "sent", at), store.advance(row, "delivered", at)]
            moves += pair if i % 2 else pair[::-1]
            if i < 10:
                moves.append(store.advance(row, "accepted", at))
        results = await asyncio.gather(*moves)
        assert sum(results) == 20  # one move per attempt applied
        assert set((await _statuses(container, ids)).values()) == {"delivered"}
        # A late `sent`, read as `accepted` by its lookup, cannot undo `delivered`; and
        # `sent` then `delivered` in separate batches (read before either) ends delivered.
        assert not await store.advance(rows[0], "sent", at)
        assert (await _statuses(container, ids[:1]))[ids[0]] == "delivered"
        more, second = await _attempts(container, 1)
        (row,) = (await store.by_provider_ids(second, [f"SM0-{second.hex[:6]}"])).values()
        assert await store.advance(row, "sent", at)
        assert await store.advance(row, "delivered", at)
        assert (await _statuses(container, more))[more[0]] == "delivered"
    finally:
        await store.close()


async def test_answers_share_one_statement_and_a_duplicate_provider_id_fails_alone(
    container: Container,
) -> None:
    # Three claimed attempts answered together: one names a provider message id another
    # attempt of the account already has (the unique index refuses it). The other two
    # are recorded, with every field; only the duplicate's caller sees the error.
    ids, account = await _attempts(container, 1)  # SM0-… is taken by ids[0]
    taken = f"SM0-{account.hex[:6]}"
    fresh = [uuid.uuid4() for _ in range(3)]
    async with container.pool.connection() as conn:
        mid = (await (await conn.execute("SELECT message_id, tenant_id FROM attempts"
                                          " WHERE id = %s", (ids[0],))).fetchone())
        assert mid is not None
        for i, aid in enumerate(fresh):
            await conn.execute(
                "INSERT INTO attempts (id, message_id, tenant_id, step, attempt, channel,"
                " provider_account_id, adapter, status, sent_at)"
                " VALUES (%s, %s, %s, 1, %s, 'sms', %s, 'twilio_sms', 'sending', now())",
                (aid, mid[0], mid[1], i + 1, account))
    store = PostgresAttemptStore(container.pool)
    flushes = count_flushes(store._answers)
    try:
        results = await asyncio.gather(
            store.answer(Answer(fresh[0], "accepted", provider_message_id="SMx1", segments=2,
                                cost=Decimal("0.0075"), adapter="twilio_sms",
                                adapter_version="1.2.0", adapter_sha256="ab" * 32)),
            store.answer(Answer(fresh[1], "accepted", provider_message_id=taken)),
            store.answer(Answer(fresh[2], "rejected", error_code="provider.rejected",
                                provider_error_code="21211")),
            return_exceptions=True)
    finally:
        await store.close()
    assert flushes[0] == 3  # one batch
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], psycopg.errors.UniqueViolation)
    async with container.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id, status, provider_message_id, error_code, provider_error_code, segments,"
            " cost, adapter_version, adapter_sha256, answered_at IS NOT NULL"
            " FROM attempts WHERE id = ANY(%s)", (fresh,))
        rows = {r[0]: r[1:] for r in await cur.fetchall()}
    assert rows[fresh[0]] == ("accepted", "SMx1", None, None, 2, Decimal("0.0075"), "1.2.0",
                              "ab" * 32, True)
    assert rows[fresh[1]][0] == "sending"  # not recorded: its caller got the error
    assert rows[fresh[2]] == ("rejected", None, "provider.rejected", "21211", None, None, None,
                              None, True)
