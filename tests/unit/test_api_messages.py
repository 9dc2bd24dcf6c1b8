"""The message and contact API without I/O: the cursor, contact normalisation, the schema."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from hermes.api.app import create_app
from hermes.api.contacts import ContactPut, normalise
from hermes.api.message_views import decode_cursor, encode_cursor
from hermes.domain.errors import HermesError
from tests.fakes import fake_container


def test_cursor_round_trips_to_the_microsecond() -> None:
    at = datetime(2026, 11, 27, 20, 30, 1, 123456, tzinfo=UTC)
    mid = uuid.uuid4()
    cursor = encode_cursor(at, mid)
    assert cursor.isascii() and "=" not in cursor
    assert decode_cursor(cursor) == (at, mid)


@pytest.mark.parametrize("cursor", ["", "bogus!", "AAAA", encode_cursor(
    datetime(2026, 1, 1, tzinfo=UTC), uuid.uuid4()) + "AA"])
def test_a_cursor_this_api_did_not_issue_is_refused(cursor: str) -> None:
    with pytest.raises(HermesError) as exc:
        decode_cursor(cursor)
    assert exc.value.code == "request.invalid" and exc.value.errors[0].field == "cursor"


def test_contact_addresses_are_normalised() -> None:
    c = normalise("c1", ContactPut(phone="+45 20 12 34 56", email="Ada@BÜCHER.example",
                                   push_tokens=["A1" * 32, "A1" * 32], whatsapp="+4520123456",
                                   locale="en-GB", timezone="Europe/London"))
    assert c.phone == "+4520123456" and c.whatsapp == "+4520123456"
    assert c.email == "Ada@xn--bcher-kva.example"
    assert len(c.push_tokens) == 1  # duplicates collapse
    assert (c.locale, c.timezone) == ("en-GB", "Europe/London")


def test_a_contact_may_have_no_address_at_all() -> None:
    c = normalise("c2", ContactPut(locale="da"))
    assert c.phone is None and c.email is None and c.push_tokens == []


@pytest.mark.parametrize(("body", "fields"), [
    (ContactPut(phone="+4512345678", push_tokens=["a" * 64, "nope"]),
     {"phone", "push_tokens[1]"}),
    (ContactPut(locale="english please", timezone="Europe/Atlantis"), {"locale", "timezone"}),
    (ContactPut(push_tokens=["a" * 64] * 21), {"push_tokens"}),
])
def test_every_bad_field_is_named(body: ContactPut, fields: set[str]) -> None:
    with pytest.raises(HermesError) as exc:
        normalise("c3", body)
    assert {e.field for e in exc.value.errors} == fields


@pytest.fixture
async def client() -> AsyncIterator[AsyncTestClient[Litestar]]:
    container = fake_container()
    async with AsyncTestClient(create_app(container.settings, container)) as c:
        yield c


async def test_openapi_documents_the_message_and_contact_api(
    client: AsyncTestClient[Litestar],
) -> None:
    doc = (await client.get("/schema/openapi.json")).json()
    paths = doc["paths"]
    assert {"/v1/messages", "/v1/messages/batch", "/v1/messages/{message_id}",
            "/v1/messages/{message_id}/cancel", "/v1/contacts/{external_id}"} <= set(paths)
    assert {"get", "post"} <= set(paths["/v1/messages"])
    assert {"put", "get", "delete"} <= set(paths["/v1/contacts/{external_id}"])
    schemas = doc["components"]["schemas"]
    for name in ["MessageDetail", "AttemptView", "EventView", "StepView", "MessageList",
                 "BatchResult", "BatchItem", "ContactView", "MessageAccepted"]:
        assert name in schemas, sorted(schemas)
    body = paths["/v1/contacts/{external_id}"]["put"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["$ref"].endswith("ContactPut")
    params = {p["name"] for p in paths["/v1/messages"]["get"]["parameters"]}
    assert {"status", "created_after", "created_before", "cursor", "limit"} <= params
