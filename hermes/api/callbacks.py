"""`/v1/callbacks/{account_id}`: provider delivery receipts (and Meta's webhook handshake).

No API key: the provider proves itself with its signature, which the account's
adapter checks (SNS certificates are checked by the host). A callback that does
not verify is refused with 401 and changes nothing.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from litestar import Controller, HttpMethod, Request, Response, route
from litestar.di import NamedDependency
from litestar.params import FromPath

from hermes.bootstrap import Container
from hermes.domain.errors import Code, HermesError
from hermes.providers.callbacks import Unverified
from hermes.providers.registry import AdapterNotLoaded

log = logging.getLogger("hermes.callbacks")


def public_url(container: Container, request: Request[Any, Any, Any]) -> str:
    """The URL the provider called, as it signed it: the public base, raw path and query."""
    scope = request.scope
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) and raw else scope["path"]
    path = path.partition("?")[0]  # some servers leave the query in raw_path
    query = scope.get("query_string") or b""
    url = container.settings.callback_base_url + path
    return url + ("?" + query.decode("latin-1") if query else "")


class CallbacksController(Controller):
    path = "/v1/callbacks"
    tags = ["callbacks"]

    @route("/{account_id:uuid}", http_method=[HttpMethod.GET, HttpMethod.POST],
           summary="A provider's delivery receipt or webhook handshake")
    async def receive(
        self,
        request: Request[Any, Any, Any],
        account_id: FromPath[UUID],
        container: NamedDependency[Container],
    ) -> Response[bytes]:
        account = await container.accounts.get(account_id)
        if account is None:
            raise HermesError(Code.REQUEST_NOT_FOUND, f"no provider account {account_id}")
        body = await request.body()
        headers = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.scope["headers"]]
        try:
            result = await container.callbacks.receive(
                account, request.method, public_url(container, request), headers, body,
                container.publisher.acked)
        except Unverified as exc:
            log.warning("refused an unverified callback for account %s (%s %s): %s", account_id,
                        request.method, public_url(container, request), exc)
            raise HermesError(Code.AUTH_INVALID, "the callback's signature did not verify") \
                from exc
        except AdapterNotLoaded as exc:
            raise HermesError(Code.DEPENDENCY_UNAVAILABLE,
                              f"adapter {account.adapter} is not loaded") from exc
        except Exception as exc:  # PostgreSQL or NATS: answer 503 so the provider retries
            log.warning("callback for account %s not applied: %s", account_id, exc)
            raise HermesError(Code.DEPENDENCY_UNAVAILABLE, "try again later") from exc
        reply = result.reply
        return Response(content=reply.body, status_code=reply.status,
                        media_type=reply.content_type)
