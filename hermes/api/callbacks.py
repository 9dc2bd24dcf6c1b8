"""`/v1/callbacks/{account_id}`: provider delivery receipts (and Meta's webhook handshake).

No API key: the provider proves itself with its signature, which the account's
adapter checks (SNS certificates are checked by the host). A callback that does
not verify is refused with 401 and changes nothing.
"""

from __future__ import annotations

import logging
from uuid import UUID

from litestar import Controller, HttpMethod, Response, route
from litestar.params import FromPath
from litestar.types import Scope

from hermes.api import lean
from hermes.bootstrap import Container
from hermes.domain.errors import Code, HermesError
from hermes.providers.callbacks import Unverified
from hermes.providers.registry import AdapterNotLoaded

log = logging.getLogger("hermes.callbacks")


def public_url(container: Container, scope: Scope) -> str:
    """The URL the provider called, as it signed it: the public base, raw path and query."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) and raw else scope["path"]
    path = path.partition("?")[0]  # some servers leave the query in raw_path
    query = scope.get("query_string") or b""
    url = container.settings.callback_base_url + path
    return url + ("?" + query.decode("latin-1") if query else "")


async def _serve(req: lean.LeanRequest) -> lean.Answer:
    """A callback, on the lean path (`hermes.api.lean`): the adapter verifies and parses it."""
    container = req.container
    param: object = req.scope["path_params"]["account_id"]  # the router parsed `:uuid`
    account_id = param if isinstance(param, UUID) else UUID(str(param))
    account = await container.accounts.get(account_id)
    if account is None:
        raise HermesError(Code.REQUEST_NOT_FOUND, f"no provider account {account_id}")
    headers = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in req.scope["headers"]]
    url = public_url(container, req.scope)
    try:
        result = await container.callbacks.receive(account, req.method, url, headers, req.body,
                                                   container.publisher.acked)
    except Unverified as exc:
        log.warning("refused an unverified callback for account %s (%s %s): %s", account_id,
                    req.method, url, exc)
        raise HermesError(Code.AUTH_INVALID, "the callback's signature did not verify") \
            from exc
    except AdapterNotLoaded as exc:
        raise HermesError(Code.DEPENDENCY_UNAVAILABLE,
                          f"adapter {account.adapter} is not loaded") from exc
    except Exception as exc:  # PostgreSQL or NATS: answer 503 so the provider retries
        log.warning("callback for account %s not applied: %s", account_id, exc)
        raise HermesError(Code.DEPENDENCY_UNAVAILABLE, "try again later") from exc
    reply = result.reply
    return lean.Answer(reply.status, reply.body, media_type=reply.content_type)


class CallbacksController(Controller):
    path = "/v1/callbacks"
    tags = ["callbacks"]

    @route("/{account_id:uuid}", http_method=[HttpMethod.GET, HttpMethod.POST],
           summary="A provider's delivery receipt or webhook handshake",
           middleware=[lean.serve(_serve)])
    async def receive(self, account_id: FromPath[UUID]) -> Response[bytes]:
        """Declares the route for OpenAPI; `_serve` answers it (`hermes.api.lean`)."""
        raise NotImplementedError
