"""Delivery receipts: posted to the callback after a delay, off the send path.

A send only schedules its receipts (a timer); posting happens later on a
pooled keep-alive client, so the send endpoints never wait on a callback.
Providers that batch (WhatsApp's `statuses[]`) get one POST per endpoint for
every status that fell due within `BATCH_WINDOW`. A receipt that is expensive
to build (an RSA-signed SNS message) is passed as a function and built on a
worker thread when it falls due (OpenSSL releases the GIL while signing).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from hermes.infra.http.wire import WireClient, WireError
from hermes.observability import metrics
from hermes.sandbox.state import SandboxState

BATCH_WINDOW = 0.01  # seconds a due batchable status waits for company
MAX_BATCH = 100  # statuses per WhatsApp webhook POST
RETRY_DELAYS = (0.5, 2.0)  # after a failed POST (connection error or 5xx)


@dataclass(slots=True)
class Receipt:
    provider: str
    url: str
    body: bytes
    headers: dict[str, str]


BatchBuilder = Callable[[list[Any]], Receipt]
Pending = Receipt | Callable[[], Receipt]  # a function: built on a worker thread when due


class ReceiptDispatcher:
    def __init__(self, state: SandboxState, concurrency: int = 64) -> None:
        self._state = state
        self._client = WireClient(connect_timeout=5.0, total_timeout=5.0,
                                  user_agent="hermes-sandbox")
        self._builders = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sandbox-receipts")
        self._gate = asyncio.Semaphore(concurrency)
        self._timers: set[asyncio.TimerHandle] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._batches: dict[Hashable, tuple[BatchBuilder, list[Any]]] = {}
        self._flush_timer: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def pending(self) -> int:
        """Receipts scheduled or being posted; 0 once everything went out."""
        return len(self._timers) + len(self._tasks) + sum(len(i) for _, i in self._batches.values())

    def send_later(self, delay: float, receipts: list[Pending]) -> None:
        """Post `receipts` one after the other, in order, `delay` seconds from now."""
        self._later(delay, self._spawn, receipts)

    def batch_later(self, delay: float, key: Hashable, item: Any, build: BatchBuilder) -> None:
        """Add `item` to the batch `key` when due; `build` turns a batch into one POST."""
        self._later(delay, self._add_to_batch, key, item, build)

    async def aclose(self) -> None:
        self._closed = True
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._client.aclose()
        self._builders.shutdown(wait=False, cancel_futures=True)

    def _later(self, delay: float, callback: Callable[..., None], *args: Any) -> None:
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        holder: list[asyncio.TimerHandle] = []

        def fire() -> None:
            self._timers.discard(holder[0])
            callback(*args)

        holder.append(loop.call_later(max(delay, 0.0), fire))
        self._timers.add(holder[0])

    def _add_to_batch(self, key: Hashable, item: Any, build: BatchBuilder) -> None:
        self._batches.setdefault(key, (build, []))[1].append(item)
        if self._flush_timer is None:
            loop = asyncio.get_running_loop()
            self._flush_timer = loop.call_later(BATCH_WINDOW, self._flush)

    def _flush(self) -> None:
        self._flush_timer = None
        batches, self._batches = self._batches, {}
        for build, items in batches.values():
            for start in range(0, len(items), MAX_BATCH):
                self._spawn([build(items[start:start + MAX_BATCH])])

    def _spawn(self, receipts: list[Pending]) -> None:
        if self._closed:
            return
        task = asyncio.get_running_loop().create_task(self._post_in_order(receipts))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post_in_order(self, receipts: list[Pending]) -> None:
        loop = asyncio.get_running_loop()
        for pending in receipts:
            if isinstance(pending, Receipt):
                await self._post(pending)
            else:
                await self._post(await loop.run_in_executor(self._builders, pending))

    async def _post(self, receipt: Receipt) -> None:
        for attempt in range(len(RETRY_DELAYS) + 1):
            status: int | None = None
            error: str | None = None
            async with self._gate:
                try:
                    answer = await self._client.request("POST", receipt.url,
                                                        receipt.headers.items(), receipt.body,
                                                        max_body=64 * 1024)
                    status = answer.status
                except (WireError, TimeoutError) as exc:
                    error = f"{type(exc).__name__}: {exc}"
            metrics.sandbox_receipt(receipt.provider, status)
            self._state.receipts.append({
                "provider": receipt.provider,
                "url": receipt.url,
                "headers": receipt.headers,
                "body": receipt.body.decode("utf-8", "replace"),
                "sent_at": time.time(),
                "attempt": attempt + 1,
                "status": status,
                "error": error,
            })
            if status is not None and status < 500:
                return
            if attempt < len(RETRY_DELAYS):
                await asyncio.sleep(RETRY_DELAYS[attempt])
