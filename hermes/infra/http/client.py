"""The one pooled HTTP client a process uses for provider calls (aiohttp).

Keep-alive connections are shared by every send; each call has a connect timeout
and a total deadline, and every transport failure surfaces as `ProviderHttpError`
(retryable: the same request may succeed later or at another provider). Cookies
are never kept, so nothing of one tenant's call rides along on another's.

With `targets`, the SSRF rules apply to every call (a provider account's base URL is
chosen by a tenant): IP literals are checked before the request, names as they are
resolved, so a base URL re-pointed at a private address after it was saved is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDict

from hermes.infra.http.ssrf import GuardedResolver, TargetPolicy, literal_refusal

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
        targets: TargetPolicy | None = None,
    ) -> None:
        self.timeout = aiohttp.ClientTimeout(total=total_timeout, connect=connect_timeout)
        self.max_connections = max_connections
        self.targets = targets
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running event loop, as aiohttp wants.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.max_connections, limit_per_host=0,
                    resolver=None if self.targets is None else GuardedResolver(self.targets)),
                timeout=self.timeout,
                cookie_jar=aiohttp.DummyCookieJar(),
                headers={"User-Agent": "hermes"},
                trust_env=False,
            )
        return self._session

    async def request(
        self, method: str, url: str, headers: list[list[str]] | list[tuple[str, str]],
        body: str | bytes | None,
    ) -> HttpAnswer:
        data = body.encode() if isinstance(body, str) else body
        self._check(url)
        try:
            async with self.session.request(
                method, url, headers=CIMultiDict((k, v) for k, v in headers), data=data or None,
                allow_redirects=False,
            ) as response:
                raw = await response.read()
                return HttpAnswer(
                    status=response.status,
                    headers=[[str(k), str(v)] for k, v in response.headers.items()],
                    body=raw.decode("utf-8", "replace"),
                )
        except TimeoutError as exc:
            raise ProviderHttpError(f"no answer from {_host(url)} in time", timeout=True) from exc
        except (aiohttp.ClientError, ValueError) as exc:
            raise ProviderHttpError(f"{type(exc).__name__}: {exc}") from exc

    async def get_bytes(self, url: str) -> tuple[int, bytes]:
        answer_status, raw = 0, b""
        self._check(url)
        try:
            async with self.session.get(url, allow_redirects=False) as response:
                answer_status, raw = response.status, await response.read()
        except TimeoutError as exc:
            raise ProviderHttpError(f"no answer from {_host(url)} in time", timeout=True) from exc
        except (aiohttp.ClientError, ValueError) as exc:
            raise ProviderHttpError(f"{type(exc).__name__}: {exc}") from exc
        return answer_status, raw

    def _check(self, url: str) -> None:
        refused = None if self.targets is None else literal_refusal(url, self.targets)
        if refused is not None:
            raise ProviderHttpError(f"target not allowed: {refused}")

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


def _host(url: str) -> str:
    return urlsplit(url).hostname or url
