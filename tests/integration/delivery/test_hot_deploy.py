"""Hot deploy under delivery: attempts record the version used, a call in flight finishes
on the version it started with, and a version that keeps trapping is quarantined, the one
before restored, and no job is lost or failed on its account."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from hermes.delivery.worker import DURABLE, STREAM
from hermes.domain.jobs import ENCODER, deliver_subject
from hermes.infra.postgres.adapters import Module
from hermes.providers.deploy import AdapterSync
from hermes.providers.registry import ActiveAdapter
from tests.integration.adapters.deploy_support import (
    builtin_sha,
    deploys,
    twilio,
    unique_version,
    until,
)
from tests.integration.delivery.support import TWILIO, World

__all__ = ["deploys"]


async def stored(sync: AdapterSync, wasm: bytes) -> ActiveAdapter:
    """Upload a module straight into the store (the API's gate has its own tests)."""
    adapter = await asyncio.to_thread(sync.registry.load, wasm)
    await sync.store.upload(Module(adapter.sha256, adapter.name, adapter.version, wasm,
                                   adapter.manifest), golden={}, smoke={})
    return adapter


async def activate(sync: AdapterSync, adapter: ActiveAdapter) -> None:
    change = await sync.store.activate(adapter.name, adapter.sha256)
    assert change is not None
    await sync.announce(change)
    await until(lambda: sync.registry.get(adapter.name).sha256 == adapter.sha256, 2.0,
                f"{adapter.version} live")


async def test_attempts_record_the_version_they_used(world: World, deploys: AdapterSync) -> None:
    before = await world.deliver(await world.job("sms", "+447400000001", TWILIO))
    assert before.outcome == "accepted"
    new = await stored(deploys, twilio(unique_version()))
    await activate(deploys, new)
    job = await world.job("sms", "+447400000001", TWILIO)
    assert (await world.deliver(job)).outcome == "accepted"
    row = await world.attempt(job.attempt_id)
    assert (row["adapter"], row["adapter_version"], row["adapter_sha256"]) == (
        "twilio_sms", new.version, new.sha256)
    first = await world.attempt(before.attempt_id)
    assert first["adapter_sha256"] == builtin_sha(world.container)


async def test_a_call_in_flight_finishes_on_its_version(world: World,
                                                        deploys: AdapterSync) -> None:
    # Hold the provider call: the new version goes live between build_request and
    # parse_response of this send.
    http = world.worker.sender.http
    real, entered, release = http.request, asyncio.Event(), asyncio.Event()

    async def held(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        await release.wait()
        return await real(*args, **kwargs)

    http.request = held  # type: ignore[method-assign]
    try:
        job = await world.job("sms", "+447400000001", TWILIO)
        running = asyncio.create_task(world.deliver(job))
        await asyncio.wait_for(entered.wait(), 5)
        new = await stored(deploys, twilio(unique_version()))
        await activate(deploys, new)
        release.set()
        result = await running
    finally:
        http.request = real  # type: ignore[method-assign]
    assert result.outcome == "accepted"  # its response was parsed by the version it began on
    row = await world.attempt(job.attempt_id)
    assert row["adapter_sha256"] == builtin_sha(world.container)
    assert deploys.registry.get("twilio_sms").sha256 == new.sha256


async def test_a_trapping_version_is_quarantined_and_no_job_is_lost(
        world: World, deploys: AdapterSync) -> None:
    js = world.container.nats.jetstream()
    for info in await js.consumers_info(STREAM):
        await js.delete_consumer(STREAM, info.name)
    good = await stored(deploys, twilio(unique_version("good")))
    await activate(deploys, good)
    bad = await stored(deploys, twilio(unique_version("trap"), trap=True))
    await activate(deploys, bad)
    world.worker.traps = deploys.monitor

    jobs = [await world.job("sms", "+447400000001", TWILIO) for _ in range(12)]
    for job in jobs:
        await js.publish(deliver_subject("sms"), ENCODER.encode(job),
                         headers={"Nats-Msg-Id": str(job.attempt_id)})
    stop = asyncio.Event()
    running = asyncio.create_task(world.worker.run(stop))
    try:
        await world.events.wait_for(len(jobs), within=20)
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
        with contextlib.suppress(Exception):
            await js.delete_consumer(STREAM, DURABLE)

    # Every job was sent by the restored version and accepted; none failed on the trap.
    results = world.events.results()
    assert sorted(r.attempt_id for r in results) == sorted(j.attempt_id for j in jobs)
    assert {r.outcome for r in results} == {"accepted"}
    for job in jobs:
        assert (await world.attempt(job.attempt_id))["adapter_sha256"] == good.sha256
    assert world.metrics.trap_retries >= 3
    assert deploys.registry.get("twilio_sms").sha256 == good.sha256

    row = await deploys.store.get(bad.sha256)
    assert row is not None and row.status == "quarantined"
    assert row.quarantine_reason and "adapter.trap" in row.quarantine_reason
    restored = await deploys.store.get(good.sha256)
    assert restored is not None and restored.status == "active"


async def test_an_account_pinned_to_a_version_keeps_it(world: World,
                                                       deploys: AdapterSync) -> None:
    pinned = await stored(deploys, twilio(unique_version("pin")))
    await activate(deploys, await stored(deploys, twilio(unique_version())))
    async with world.container.pool.connection() as conn:
        await conn.execute("UPDATE provider_accounts SET adapter_version = %s WHERE id = %s",
                           (pinned.version, TWILIO))
    try:
        await world.directory.refresh()
        await deploys.reconcile()  # pinned versions are kept loaded
        job = await world.job("sms", "+447400000001", TWILIO)
        assert (await world.deliver(job)).outcome == "accepted"
        assert (await world.attempt(job.attempt_id))["adapter_sha256"] == pinned.sha256
    finally:
        async with world.container.pool.connection() as conn:
            await conn.execute("UPDATE provider_accounts SET adapter_version = NULL"
                               " WHERE id = %s", (TWILIO,))
        await world.directory.refresh()
        await deploys.reconcile()
