"""The provider sandbox server: `Sandbox` for in-process use, `serve` and `main`.

    async with Sandbox() as sandbox:          # binds 127.0.0.1 on a free port
        url = sandbox.url                     # e.g. http://127.0.0.1:40123
        ...

`python -m hermes.sandbox.server --port 8025` runs it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from hermes.observability import server as metrics_server
from hermes.sandbox import control, fcm, google_oauth, messente, ses, twilio, whatsapp
from hermes.sandbox.common import Context
from hermes.sandbox.http import HttpServer, Router, start_server
from hermes.sandbox.receipts import ReceiptDispatcher
from hermes.sandbox.sns import SnsSigner
from hermes.sandbox.state import SandboxConfig, SandboxState

DEFAULT_PORT = 8025


class Sandbox:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        receipt_delay: float = 0.1,
        timeout_hold: float = 30.0,
        whatsapp_webhook: str | None = None,
        ses_endpoints: dict[str, str] | None = None,
        public_url: str | None = None,
    ) -> None:
        """`port=0` picks a free port; `public_url` overrides the URL put in
        SNS `SigningCertURL`s when the sandbox is reached through another address."""
        self.host = host
        self.port = port
        self.state = SandboxState(config=SandboxConfig(receipt_delay, timeout_hold))
        self.state.whatsapp_webhook = whatsapp_webhook
        self.state.ses_configuration_sets.update(ses_endpoints or {})
        self._public_url = public_url
        self._server: HttpServer | None = None
        self._receipts: ReceiptDispatcher | None = None

    @property
    def url(self) -> str:
        return self._public_url or f"http://{self.host}:{self.port}"

    @property
    def receipts(self) -> ReceiptDispatcher:
        assert self._receipts is not None, "sandbox not started"
        return self._receipts

    async def start(self) -> Sandbox:
        router = Router()
        self._receipts = ReceiptDispatcher(self.state)
        ctx = Context(self.state, self._receipts, router, "")
        signer = SnsSigner()
        twilio.install(ctx)
        messente.install(ctx)
        ses.install(ctx, signer)
        google_oauth.install(ctx)
        fcm.install(ctx)
        whatsapp.install(ctx)
        control.install(ctx, signer)
        self._server = await start_server(router, self.host, self.port)
        self.port = self._server.port
        ctx.base_url = self.url
        return self

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.close()
            self._server = None
        if self._receipts is not None:
            await self._receipts.aclose()
            self._receipts = None

    async def drain(self, within: float = 10.0) -> None:
        """Wait until every scheduled receipt has been posted (for tests)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        # Polling: the count moves with timers, batches and tasks alike.
        while self.receipts.pending and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    async def __aenter__(self) -> Sandbox:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def serve(host: str = "127.0.0.1", port: int = DEFAULT_PORT, *,
                handle_signals: bool = True, metrics_port: int = 0, **options: Any) -> None:
    """Run the sandbox until cancelled (or SIGINT/SIGTERM when `handle_signals`).

    To embed it next to other servers in one loop, pass `handle_signals=False`
    and cancel the task, or use `Sandbox` directly.
    """
    sandbox = await Sandbox(host, port, **options).start()
    print(f"hermes provider sandbox listening on {sandbox.url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM) if handle_signals else ():
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    scrapes = (asyncio.create_task(metrics_server.serve(host, metrics_port, stop))
               if metrics_port else None)
    try:
        await stop.wait()
    finally:
        if scrapes is not None:
            await scrapes
        await sandbox.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hermes sandbox", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--receipt-delay-ms", type=float, default=100.0)
    parser.add_argument("--timeout-hold-ms", type=float, default=30_000.0)
    parser.add_argument("--whatsapp-webhook", default=None,
                        help="URL that receives WhatsApp status webhooks")
    parser.add_argument("--ses-endpoint", default=None,
                        help="SNS subscription endpoint for the default SES configuration set")
    parser.add_argument("--public-url", default=None)
    parser.add_argument("--metrics-port", type=int, default=0,
                        help="serve Prometheus /metrics on this port (0: off)")
    args = parser.parse_args(argv)
    from hermes.observability.setup import tune_gc
    from hermes.sandbox.credentials import SES
    from hermes.settings import DEFAULT_GC_GEN0_THRESHOLD

    tune_gc(DEFAULT_GC_GEN0_THRESHOLD)

    options: dict[str, Any] = {
        "receipt_delay": args.receipt_delay_ms / 1000,
        "timeout_hold": args.timeout_hold_ms / 1000,
        "whatsapp_webhook": args.whatsapp_webhook,
        "ses_endpoints": {SES.configuration_set: args.ses_endpoint} if args.ses_endpoint else None,
        "public_url": args.public_url,
        "metrics_port": args.metrics_port,
    }
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        asyncio.run(serve(args.host, args.port, **options))
    else:
        uvloop.run(serve(args.host, args.port, **options))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
