"""The one pooled HTTP client a process uses for provider calls.

Keep-alive connections are shared by every send; each call has a connect timeout
and a total deadline, and every transport failure surfaces as `ProviderHttpError`
(retryable: the same request may succeed later or at another provider).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

CONNECT_TIMEOUT_S = 5.0
TOTAL_TIMEOUT_S = 15.0


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    headers: list[list[str]]
    body: str


class ProviderHttpError(Exception):
    """No answer: connection refused or reset, or the deadline passed (`timeout` True)."""

    def __init__(self, detail: str, *, timeout: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.timeout = timeout


class ProviderHttp:
    def __init__(
        self,
        *,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        total_timeout: float = TOTAL_TIMEOUT_S,
        max_connections: int = 512,
    ) -> None:
        self.total_timeout = total_timeout
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(total_timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections),
            headers={"User-Agent": "hermes"},
            follow_redirects=False,
            trust_env=False,
        )

    async def request(
        self, method: str, url: str, headers: list[list[str]] | list[tuple[str, str]],
        body: str | bytes | None,
    ) -> HttpAnswer:
        content = body.encode() if isinstance(body, str) else body
        try:
            async with asyncio.timeout(self.total_timeout):
                response = await self.client.request(
                    method, url, headers=[(k, v) for k, v in headers], content=content or None)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise ProviderHttpError(f"no answer from {httpx.URL(url).host} in time",
                                    timeout=True) from exc
        except httpx.HTTPError as exc:
            raise ProviderHttpError(f"{type(exc).__name__}: {exc}") from exc
        return HttpAnswer(
            status=response.status_code,
            headers=[[k, v] for k, v in response.headers.multi_items()],
            body=response.content.decode("utf-8", "replace"),
        )

    async def get_bytes(self, url: str) -> tuple[int, bytes]:
        try:
            async with asyncio.timeout(self.total_timeout):
                response = await self.client.get(url)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise ProviderHttpError(f"no answer from {url} in time", timeout=True) from exc
        except httpx.HTTPError as exc:
            raise ProviderHttpError(f"{type(exc).__name__}: {exc}") from exc
        return response.status_code, response.content

    async def close(self) -> None:
        await self.client.aclose()
