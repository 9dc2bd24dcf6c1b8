"""The validation gate an uploaded adapter passes before it is stored.

1. Size: at most `MAX_MODULE_BYTES`.
2. The host's load checks (`AdapterRuntime.load`): no imports, the ABI's exports
   and signatures, `hermes_abi_version() == 1`, a valid manifest; compiled here,
   so the code is in this machine's cache before anyone activates it.
3. The manifest's name and version match what the uploader said, if they said.
4. Golden vectors, when the upload carries them: each input gives exactly the
   expected output (or error code), under the runtime's limits.
5. A smoke test against the provider sandbox, when one is configured and it
   speaks the adapter's provider: a message to a number the sandbox delivers is
   built, sent and its answer parsed as `accepted`.

Each failure is an `HermesError` with its own code.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from hermes import _core
from hermes.delivery.sender import Sender
from hermes.domain.errors import Code, HermesError
from hermes.domain.jobs import DeliveryJob
from hermes.domain.messages import Content
from hermes.providers.accounts import sandbox_accounts
from hermes.providers.registry import ActiveAdapter, AdapterRegistry

MAX_MODULE_BYTES = 2 * 1024 * 1024
MAX_VECTORS = 200
FUNCTIONS = ("build_request", "parse_response", "parse_callback")

# Recipients the sandbox delivers (hermes/sandbox/README.md), per channel.
SMOKE_RECIPIENTS = {
    "sms": "+4520120001",
    "whatsapp": "+4520120001",
    "email": "smoke@example.com",
    "push": "a1b2c3d4" * 8,
}


@dataclass(frozen=True)
class Checked:
    adapter: ActiveAdapter
    golden: dict[str, Any]
    smoke: dict[str, Any]


async def check_module(registry: AdapterRegistry, wasm: bytes, *, name: str | None,
                       version: str | None) -> ActiveAdapter:
    """Gates 1-3; the loaded (not active) version."""
    if not wasm:
        raise HermesError(Code.ADAPTER_INVALID_MODULE, "the upload has no module")
    if len(wasm) > MAX_MODULE_BYTES:
        raise HermesError(Code.REQUEST_TOO_LARGE,
                          f"an adapter module is at most {MAX_MODULE_BYTES} bytes")
    try:
        adapter = await asyncio.to_thread(registry.load, wasm)
    except _core.AdapterError as exc:
        raise HermesError(Code.ADAPTER_INVALID_MODULE, exc.message) from None
    for what, given, found in (("name", name, adapter.name),
                               ("version", version, adapter.version)):
        if given is not None and given != found:
            raise HermesError(Code.ADAPTER_INVALID_MODULE,
                              f"the module's manifest says {what} {found!r}, not {given!r}")
    return adapter


def parse_golden(raw: bytes | None, adapter: ActiveAdapter) -> list[dict[str, Any]] | None:
    """The vectors of a golden file: `{"name"?, "vectors": [{"name"?, "function", "input",
    "output" | "error", "base_url"?}]}`. `request.invalid` when it is not one."""
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise HermesError(Code.REQUEST_INVALID, f"golden vectors are not JSON: {exc}") from None
    vectors = doc.get("vectors") if isinstance(doc, dict) else None
    if not isinstance(vectors, list) or not vectors or len(vectors) > MAX_VECTORS:
        raise HermesError(Code.REQUEST_INVALID,
                          f"golden vectors: a `vectors` list of 1 to {MAX_VECTORS} items")
    if doc.get("name") not in (None, adapter.name):
        raise HermesError(Code.REQUEST_INVALID,
                          f"golden vectors are for {doc.get('name')!r}, not {adapter.name!r}")
    for i, v in enumerate(vectors):
        if (not isinstance(v, dict) or v.get("function") not in FUNCTIONS
                or not isinstance(v.get("input"), dict) or ("output" in v) == ("error" in v)):
            raise HermesError(Code.REQUEST_INVALID,
                              f"golden vector {i}: needs `function` (one of "
                              f"{', '.join(FUNCTIONS)}), an `input` object and either "
                              "`output` or `error`")
    return vectors


def run_golden(registry: AdapterRegistry, adapter: ActiveAdapter,
               vectors: list[dict[str, Any]]) -> dict[str, Any]:
    """Run every vector (CPU-bound; off the event loop). `adapter.golden_vector_failed`
    names the first that does not match."""
    rt = registry.runtime
    for i, v in enumerate(vectors):
        label = v.get("name") or f"#{i}"
        data = json.dumps(v["input"]).encode()
        try:
            if v["function"] == "build_request":
                base_url = v.get("base_url", (v["input"].get("config") or {}).get("base_url"))
                raw = rt.build_request(adapter.sha256, data, base_url)
            elif v["function"] == "parse_response":
                raw = rt.parse_response(adapter.sha256, data)
            else:
                raw = rt.parse_callback(adapter.sha256, data)
        except _core.AdapterError as exc:
            if v.get("error") == exc.code:
                continue
            raise HermesError(Code.ADAPTER_GOLDEN_VECTOR_FAILED,
                              f"golden vector {label} ({v['function']}): {exc.code}: "
                              f"{exc.message}") from None
        got = json.loads(raw)
        if "error" in v or got != v["output"]:
            expected = v.get("output", {"error": v.get("error")})
            raise HermesError(Code.ADAPTER_GOLDEN_VECTOR_FAILED,
                              f"golden vector {label} ({v['function']}): expected "
                              f"{json.dumps(expected)[:400]}, got {json.dumps(got)[:400]}")
    return {"status": "passed", "vectors": len(vectors)}


async def smoke_test(sender: Sender, sandbox_url: str | None,
                     adapter: ActiveAdapter) -> dict[str, Any]:
    """Send one message through the sandbox with `adapter`; skipped when there is no
    sandbox or it does not speak this adapter's provider."""
    if not sandbox_url:
        return {"status": "skipped", "reason": "no provider sandbox configured"}
    account = next((a for a in sandbox_accounts(sandbox_url) if a.adapter == adapter.name),
                   None)
    if account is None:
        return {"status": "skipped", "reason": f"the sandbox has no {adapter.name} provider"}
    to = SMOKE_RECIPIENTS[account.channel]
    job = DeliveryJob(
        attempt_id=uuid.uuid4(), message_id=uuid.uuid4(), tenant_id=uuid.uuid4(), mode="test",
        shard=0, step=0, attempt=0, channel=account.channel,  # type: ignore[arg-type]
        account_id=account.id, to=to,
        content=Content(body="Hermes adapter smoke test", subject="Smoke test",
                        title="Smoke test", html="<p>Hermes adapter smoke test</p>"))
    started = time.perf_counter()
    outcome = await sender.send(job, account, adapter)
    if outcome.outcome != "accepted":
        raise HermesError(Code.ADAPTER_SMOKE_TEST_FAILED,
                          f"sending to the sandbox's {to} gave {outcome.outcome} "
                          f"({outcome.code}: {outcome.detail})")
    return {"status": "passed", "to": to, "provider_message_id": outcome.provider_message_id,
            "ms": round((time.perf_counter() - started) * 1000, 1)}


async def validate(registry: AdapterRegistry, sender: Sender, sandbox_url: str | None,
                   wasm: bytes, golden: bytes | None, *, name: str | None,
                   version: str | None) -> Checked:
    # The module is not kept loaded here (unless this process had it already): its compiled
    # code stays in the runtime's cache, so activating it later loads it in milliseconds.
    known = registry.loaded(hashlib.sha256(wasm).hexdigest()) is not None
    adapter: ActiveAdapter | None = None
    try:
        adapter = await check_module(registry, wasm, name=name, version=version)
        vectors = parse_golden(golden, adapter)
        if vectors is None:
            golden_result: dict[str, Any] = {"status": "skipped", "reason": "no golden vectors"}
        else:
            golden_result = await asyncio.to_thread(run_golden, registry, adapter, vectors)
        smoke = await smoke_test(sender, sandbox_url, adapter)
    finally:
        if adapter is not None and not known:
            registry.unload(adapter.sha256)
    return Checked(adapter, golden_result, smoke)
