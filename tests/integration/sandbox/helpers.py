"""Raw provider requests for tests that need more control than the SDKs give."""

from __future__ import annotations

import httpx

from hermes.sandbox.credentials import MESSENTE, TWILIO, WHATSAPP

TWILIO_PATH = f"/2010-04-01/Accounts/{TWILIO.account_sid}/Messages.json"
WHATSAPP_PATH = f"/v21.0/{WHATSAPP.phone_number_id}/messages"


async def twilio_send(http: httpx.AsyncClient, to: str, callback: str | None = None,
                      timeout: float = 10.0) -> httpx.Response:
    form = {"To": to, "From": TWILIO.from_number, "Body": "hello"}
    if callback:
        form["StatusCallback"] = callback
    return await http.post(TWILIO_PATH, data=form, auth=(TWILIO.account_sid, TWILIO.auth_token),
                           timeout=timeout)


async def messente_send(http: httpx.AsyncClient, to: str, dlr_url: str | None = None
                        ) -> httpx.Response:
    body: dict[str, object] = {"to": to, "messages": [{"channel": "sms", "text": "hello"}]}
    if dlr_url:
        body["dlr_url"] = dlr_url
    return await http.post("/v1/omnimessage", json=body,
                           auth=(MESSENTE.username, MESSENTE.password))


async def whatsapp_send(http: httpx.AsyncClient, to: str) -> httpx.Response:
    auth = {"authorization": f"Bearer {WHATSAPP.access_token}"}
    return await http.post(WHATSAPP_PATH, headers=auth,
                           json={"messaging_product": "whatsapp", "to": to, "type": "text",
                                 "text": {"body": "hello"}})
