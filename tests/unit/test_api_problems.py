"""Every error the API returns is RFC 9457 problem+json with a catalogue code."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient

from hermes.api import lean
from hermes.api.app import create_app
from hermes.bootstrap import Container
from hermes.domain.errors import HermesError, catalogue
from hermes.tenancy.secrets import digest, new_api_key
from tests.fakes import FakeProbe, FakeTenantStore, fake_container


@pytest.fixture
def container() -> Container:
    return fake_container()


@pytest.fixture
async def client(container: Container) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    async with AsyncTestClient(create_app(container.settings, container)) as c:
        yield c


def assert_problem(resp: object, status: int, code: str) -> dict[str, object]:
    assert resp.status_code == status, resp.text  # type: ignore[attr-defined]
    assert resp.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]
    body: dict[str, object] = resp.json()  # type: ignore[attr-defined]
    assert body["code"] == code
    assert body["status"] == status
    assert body["type"] == f"urn:hermes:error:{code}"
    assert body["title"] == catalogue()[code].title
    assert str(body["instance"]).startswith("req_")
    return body


async def test_unknown_route_is_problem_404(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    assert_problem(await client.get("/v1/nothing-here"), 404, "request.not_found")


async def test_wrong_method_is_problem_405(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    assert_problem(await client.post("/healthz"), 405, "request.method_not_allowed")


async def test_missing_and_malformed_and_unknown_keys_are_401(
    client: AsyncTestClient,  # type: ignore[type-arg]
) -> None:
    resp = await client.get("/v1/account")
    assert_problem(resp, 401, "auth.missing")
    assert resp.headers["www-authenticate"].startswith("Bearer")
    resp = await client.get("/v1/account", headers={"Authorization": "Bearer sk_wrong_shape"})
    assert_problem(resp, 401, "auth.invalid")
    resp = await client.get("/v1/account", headers=_bearer(new_api_key("test")))
    assert_problem(resp, 401, "auth.invalid")
    resp = await client.get("/v1/account", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert_problem(resp, 401, "auth.missing")


async def test_valid_key_acts_for_its_tenant(
    client: AsyncTestClient, container: Container  # type: ignore[type-arg]
) -> None:
    key = await _read_only_key(container, "acme", "live")
    resp = await client.get("/v1/account", headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 200
    assert resp.json()["tenant_name"] == "acme" and resp.json()["mode"] == "live"
    assert resp.headers["x-request-id"].startswith("req_")


async def test_unhandled_exception_is_problem_500_without_internals(
    client: AsyncTestClient, container: Container  # type: ignore[type-arg]
) -> None:
    class Boom(FakeTenantStore):
        async def principal_for_key(self, key_hash: bytes) -> None:
            raise RuntimeError("secret internal detail")

    container.tenants = Boom()
    resp = await client.get("/v1/account", headers=_bearer(new_api_key("test")))
    body = assert_problem(resp, 500, "internal.error")
    assert "secret internal detail" not in resp.text and "detail" not in body


async def test_readyz_fails_with_the_names_of_failed_probes(
    client: AsyncTestClient, container: Container  # type: ignore[type-arg]
) -> None:
    container.probes = [FakeProbe("postgres"), FakeProbe("nats", ConnectionError("refused")),
                        FakeProbe("redis", TimeoutError())]
    body = assert_problem(await client.get("/readyz"), 503, "internal.dependency_unavailable")
    assert body["failed"] == ["nats", "redis"]


async def test_openapi_schema_is_served(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    resp = await client.get("/schema/openapi.json")
    assert resp.status_code == 200
    paths = resp.json()["paths"]
    assert {"/healthz", "/readyz", "/v1/account"} <= set(paths)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# `POST /v1/messages` is served by the lean path (hermes.api.lean), below Litestar's handler
# call: its errors must still be the app's problems, with the app's middleware around them.

async def test_the_lean_send_route_answers_problems_through_the_app(
    client: AsyncTestClient, container: Container  # type: ignore[type-arg]
) -> None:
    resp = await client.post("/v1/messages", content=b"{}")
    assert_problem(resp, 401, "auth.missing")
    assert resp.headers["www-authenticate"].startswith("Bearer")
    assert resp.headers["x-request-id"] == resp.json()["instance"]
    key = await _read_only_key(container)
    resp = await client.post("/v1/messages", content=b"{}", headers=_bearer(key))
    assert_problem(resp, 403, "auth.forbidden")
    resp = await client.post("/v1/messages", content=b"{", headers=_bearer(key))
    assert_problem(resp, 403, "auth.forbidden")  # the key is checked before the body


async def test_the_lean_send_route_bounds_the_body_like_litestar(
    container: Container,
) -> None:
    small = fake_container(max_body_bytes=64)
    small.tenants = container.tenants
    key = await _read_only_key(container)
    async with AsyncTestClient(create_app(small.settings, small)) as c:
        announced = await c.post("/v1/messages", content=b"x" * 65, headers=_bearer(key))
        assert_problem(announced, 413, "request.too_large")

        fits = await c.post("/v1/messages", content=b"x" * 64, headers=_bearer(key))
        assert_problem(fits, 403, "auth.forbidden")  # under the bound, the request goes on


async def test_a_body_without_content_length_is_bounded_as_it_streams() -> None:
    events = [{"type": "http.request", "body": b"x" * 20, "more_body": True}] * 4 + \
        [{"type": "http.request", "body": b"x", "more_body": False}]

    async def receive() -> dict[str, object]:
        return events.pop(0)

    scope = {"type": "http", "headers": [(b"transfer-encoding", b"chunked")]}
    assert await lean.read_body(scope, receive, 81) == b"x" * 81  # type: ignore[arg-type]
    events[:] = [{"type": "http.request", "body": b"x" * 20, "more_body": True}] * 6
    with pytest.raises(HermesError) as exc:
        await lean.read_body(scope, receive, 81)  # type: ignore[arg-type]
    assert exc.value.code == "request.too_large"
    assert len(events) == 1  # read up to the chunk that crossed the bound, no further


async def test_the_openapi_document_describes_the_lean_send_route(
    client: AsyncTestClient,  # type: ignore[type-arg]
) -> None:
    doc = (await client.get("/schema/openapi.json")).json()
    post = doc["paths"]["/v1/messages"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("MessageCreate")
    assert "Idempotency-Key" in {p["name"] for p in post["parameters"]}
    assert post["responses"]["202"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "MessageAccepted")


async def _read_only_key(container: Container, tenant_name: str = "reader",
                         mode: str = "test") -> str:
    """A key with only the `read` scope, for a new tenant of the fake store."""
    store = container.tenants
    assert isinstance(store, FakeTenantStore)
    tenant = await store.create_tenant(tenant_name)
    key = new_api_key(mode)
    await store.add_api_key(tenant.id, prefix=key[:12], key_hash=digest(key), mode=mode,
                            scopes=["read"])
    return key
