"""The pooled HTTP client a process uses for provider calls (`hermes.infra.http.wire`).

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

from hermes.infra.http.ssrf import TargetPolicy, guarded_resolve, literal_refusal
from hermes.infra.http.wire import WireAnswer, WireClient, WireError

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
        self.targets = targets
        self.client = WireClient(
            connect_timeout=connect_timeout, total_timeout=total_timeout,
            max_per_origin=max_connections,
            resolve=None if targets is None else guarded_resolve(targets))

    async def request(
        self, method: str, url: str, headers: list[list[str]] | list[tuple[str, str]],
        body: str | bytes | None,
    ) -> HttpAnswer:
        data = body.encode() if isinstance(body, str) else body
        answer = await self._call(method, url, [(k, v) for k, v in headers], data)
        return HttpAnswer(status=answer.status,
                          headers=[[k, v] for k, v in answer.headers],
                          body=answer.body.decode("utf-8", "replace"))

    async def get_bytes(self, url: str) -> tuple[int, bytes]:
        answer = await self._call("GET", url, [], None)
        return answer.status, answer.body

    async def _call(self, method: str, url: str, headers: list[tuple[str, str]],
                    body: bytes | None) -> WireAnswer:
        refused = None if self.targets is None else literal_refusal(url, self.targets)
        if refused is not None:
            raise ProviderHttpError(f"target not allowed: {refused}")
        try:
            return await self.client.request(method, url, headers, body or None)
        except TimeoutError as exc:
            raise ProviderHttpError(f"no answer from {_host(url)} in time", timeout=True) from exc
        except WireError as exc:
            raise ProviderHttpError(str(exc)) from exc

    async def close(self) -> None:
        await self.client.aclose()


def _host(url: str) -> str:
    return urlsplit(url).hostname or url
