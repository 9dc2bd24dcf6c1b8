"""Quiet hours (validation layer 7): a send that would start inside the tenant's window,
in the recipient's time zone, is scheduled for the window's end; nothing is dropped.

Windows are placed around the real clock (the API reads it), and expected times are
worked out here with zoneinfo from the wall-clock end of each window.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from hermes.bootstrap import Container
from hermes.domain.plan import Contact
from hermes.settings import Settings
from hermes.tenancy.admin import create_admin_token
from tests.integration.api.conftest import Tenant, count_messages

Client = AsyncTestClient[Litestar]
CPH = ZoneInfo("Europe/Copenhagen")
NYC = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")
SMS = {"to": {"phone": "+4520123456"}, "body": "Your order shipped"}


@pytest.fixture
def admin(settings: Settings) -> dict[str, str]:
    assert settings.database_url
    return {"Authorization": f"Bearer {create_admin_token(settings.database_url)}"}


@pytest.fixture
async def set_window(client: Client, admin: dict[str, str]) -> AsyncIterator[Any]:
    async def set_(tenant: Tenant, window: dict[str, str] | None) -> dict[str, Any]:
        resp = await client.patch(f"/admin/v1/tenants/{tenant.id}", headers=admin,
                                  json={"quiet_hours": window})
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body
    yield set_


def hhmm(t: datetime) -> str:
    return t.strftime("%H:%M")


def around_now(zone: ZoneInfo, before: timedelta, after: timedelta) -> tuple[dict[str, str],
                                                                            datetime]:
    """A window from `before` ago to `after` from now in `zone`, and when it ends (UTC)."""
    local = datetime.now(zone)
    end = (local + after).replace(second=0, microsecond=0)
    window = {"start": hhmm(local - before), "end": hhmm(end), "timezone": str(zone)}
    return window, end.astimezone(UTC)


async def send(client: Client, tenant: Tenant, body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post("/v1/messages", headers=tenant.auth, json=body)
    assert resp.status_code == 202, resp.text
    got = await client.get(f"/v1/messages/{resp.json()['id']}", headers=tenant.auth)
    detail: dict[str, Any] = got.json()
    detail["accepted_status"] = resp.json()["status"]
    # The 202 says when the first step will start, exactly when it is deferred.
    assert resp.json().get("send_at") == (
        detail["send_at"] if resp.json()["status"] == "scheduled" else None), resp.json()
    return detail


def at(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def local_at(day: date, clock: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)


async def test_the_admin_api_sets_shows_and_clears_a_tenants_quiet_hours(
    client: Client, admin: dict[str, str], tenant: Tenant, set_window: Any,
) -> None:
    window = {"start": "21:00", "end": "08:00", "timezone": "Europe/Copenhagen"}
    assert (await set_window(tenant, window))["quiet_hours"] == window
    path = f"/admin/v1/tenants/{tenant.id}"
    assert (await client.get(path, headers=admin)).json()["quiet_hours"] == window
    # A PATCH without the field leaves it as it is.
    renamed = await client.patch(path, headers=admin, json={"name": "renamed"})
    assert renamed.status_code == 200 and renamed.json()["quiet_hours"] == window
    for bad, field in [({**window, "timezone": "Mars/Olympus"}, "quiet_hours.timezone"),
                       ({"start": "21:00", "end": "08:00"}, "quiet_hours.timezone"),
                       ({**window, "end": "21:00"}, "quiet_hours.end"),
                       ({**window, "start": "25:00"}, None)]:
        resp = await client.patch(path, headers=admin, json={"quiet_hours": bad})
        assert resp.status_code == 422, (bad, resp.text)
        if field is not None:
            assert resp.json()["errors"][0]["field"] == field
    assert (await client.get(path, headers=admin)).json()["quiet_hours"] == window
    assert (await set_window(tenant, None))["quiet_hours"] is None


async def test_a_send_inside_the_window_waits_for_its_end(
    client: Client, tenant: Tenant, set_window: Any,
) -> None:
    window, end = around_now(TOKYO, timedelta(hours=1), timedelta(hours=2))
    await set_window(tenant, window)
    detail = await send(client, tenant, SMS)
    assert detail["accepted_status"] == "scheduled"
    assert at(detail["send_at"]) == end
    accepted = detail["events"][0]
    assert accepted["kind"] == "accepted"
    assert accepted["data"]["quiet_hours"]["timezone"] == "Asia/Tokyo"
    assert at(accepted["data"]["quiet_hours"]["until"]) == end

    # Outside the window nothing changes.
    window, _ = around_now(TOKYO, timedelta(hours=-1), timedelta(hours=2))
    await set_window(tenant, window)
    detail = await send(client, tenant, SMS)
    assert detail["accepted_status"] == "queued" and detail["send_at"] is None


async def test_a_later_send_at_is_kept_and_ignore_sends_at_once(
    client: Client, container: Container, tenant: Tenant, set_window: Any,
) -> None:
    window, end = around_now(TOKYO, timedelta(hours=1), timedelta(hours=2))
    await set_window(tenant, window)
    later = end + timedelta(hours=1)
    detail = await send(client, tenant, {**SMS, "send_at": later.isoformat()})
    assert at(detail["send_at"]) == later

    detail = await send(client, tenant, {**SMS, "quiet_hours": "ignore"})
    assert detail["accepted_status"] == "queued" and detail["send_at"] is None

    # A one-time code that would expire before the window ends is refused, not left to
    # expire unsent.
    expires = datetime.now(UTC) + timedelta(minutes=10)
    resp = await client.post("/v1/messages", headers=tenant.auth,
                             json={**SMS, "expires_at": expires.isoformat()})
    assert resp.status_code == 422 and resp.json()["code"] == "cascade.expires_in_past"
    assert resp.json()["errors"][0]["field"] == "expires_at"
    assert await count_messages(container, tenant) == 2


async def test_a_send_at_inside_a_window_across_midnight_moves_to_the_next_morning(
    client: Client, tenant: Tenant, set_window: Any,
) -> None:
    await set_window(tenant, {"start": "21:00", "end": "08:00", "timezone": "Europe/Copenhagen"})
    day = datetime.now(CPH).date() + timedelta(days=10)
    late = local_at(day, time(22, 30), CPH)
    detail = await send(client, tenant, {**SMS, "send_at": late.isoformat()})
    assert at(detail["send_at"]) == local_at(day + timedelta(days=1), time(8, 0), CPH)
    early = local_at(day, time(6, 15), CPH)
    detail = await send(client, tenant, {**SMS, "send_at": early.isoformat()})
    assert at(detail["send_at"]) == local_at(day, time(8, 0), CPH)
    noon = local_at(day, time(12, 0), CPH)
    detail = await send(client, tenant, {**SMS, "send_at": noon.isoformat()})
    assert at(detail["send_at"]) == noon


async def test_the_contacts_time_zone_beats_the_tenants(
    client: Client, container: Container, tenant: Tenant, set_window: Any,
) -> None:
    await set_window(tenant, {"start": "21:00", "end": "08:00", "timezone": "Europe/Copenhagen"})
    await container.contacts.put(tenant.id, Contact(external_id="nyc-1", phone="+4520123456",
                                                    timezone="America/New_York"))
    day = datetime.now(CPH).date() + timedelta(days=10)
    # 23:00 in Copenhagen is late afternoon in New York: the contact gets it then...
    evening = local_at(day, time(23, 0), CPH)
    detail = await send(client, tenant, {"to": "nyc-1", "body": "x",
                                         "send_at": evening.isoformat()})
    assert at(detail["send_at"]) == evening
    # ...while a number that is no contact waits for the Copenhagen morning.
    detail = await send(client, tenant, {**SMS, "send_at": evening.isoformat()})
    assert at(detail["send_at"]) == local_at(day + timedelta(days=1), time(8, 0), CPH)
    # 23:00 in New York is inside the window there: it waits for 08:00 New York time.
    night = local_at(day, time(23, 0), NYC)
    detail = await send(client, tenant, {"to": "nyc-1", "body": "x",
                                         "send_at": night.isoformat()})
    assert at(detail["send_at"]) == local_at(day + timedelta(days=1), time(8, 0), NYC)


async def test_a_batch_defers_each_item_on_its_own(
    client: Client, container: Container, tenant: Tenant, set_window: Any,
) -> None:
    window, end = around_now(TOKYO, timedelta(hours=1), timedelta(hours=2))
    await set_window(tenant, window)
    expires = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    resp = await client.post("/v1/messages/batch", headers=tenant.auth, json={"messages": [
        SMS, {**SMS, "quiet_hours": "ignore"}, {**SMS, "expires_at": expires}]})
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert [r.get("status") for r in results[:2]] == ["scheduled", "queued"]
    assert results[2]["error"]["code"] == "cascade.expires_in_past"
    async with container.pool.connection() as conn:
        cur = await conn.execute("SELECT send_at FROM messages WHERE id = %s",
                                 (results[0]["id"],))
        row = await cur.fetchone()
    assert row is not None and row[0] == end


async def test_a_contacts_own_window_replaces_the_tenants(
    client: Client, tenant: Tenant, set_window: Any,
) -> None:
    await set_window(tenant, {"start": "21:00", "end": "08:00", "timezone": "Europe/Copenhagen"})
    resp = await client.put("/v1/contacts/shift-worker", headers=tenant.auth, json={
        "phone": "+4520123456", "timezone": "Europe/Copenhagen",
        "quiet_hours": {"start": "12:00", "end": "14:00"}})
    assert resp.status_code == 201, resp.text
    assert resp.json()["quiet_hours"] == {"start": "12:00", "end": "14:00"}
    day = datetime.now(CPH).date() + timedelta(days=10)
    midday = local_at(day, time(12, 30), CPH)
    detail = await send(client, tenant, {"to": "shift-worker", "body": "x",
                                         "send_at": midday.isoformat()})
    assert at(detail["send_at"]) == local_at(day, time(14, 0), CPH)
    night = local_at(day, time(23, 0), CPH)
    detail = await send(client, tenant, {"to": "shift-worker", "body": "x",
                                         "send_at": night.isoformat()})
    assert at(detail["send_at"]) == night

    bad = await client.put("/v1/contacts/shift-worker", headers=tenant.auth, json={
        "phone": "+4520123456", "quiet_hours": {"start": "12:00", "end": "12:00",
                                                "timezone": "Nowhere/Land"}})
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"quiet_hours.end",
                                                         "quiet_hours.timezone"}
