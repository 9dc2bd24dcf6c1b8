"""`/admin/v1/adapters`: upload, list, activate and roll back provider adapter versions.

An upload passes the validation gate (`hermes.providers.gate`) and is stored by
SHA-256; activating or rolling back changes PostgreSQL in one transaction, then
announces the change so every process swaps (`hermes.providers.deploy`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from hermes.bootstrap import Container
from hermes.delivery.sender import Sender
from hermes.domain.errors import Code, HermesError
from hermes.infra.postgres.adapters import Change, DeployError, Module, VersionRow
from hermes.providers import gate
from hermes.providers.deploy import live_processes

WASM_TYPE = "application/wasm"


class AdapterVersion(msgspec.Struct):
    name: str
    version: str
    sha256: str
    status: str
    builtin: bool
    size: int
    uploaded_at: datetime
    activated_at: datetime | None
    quarantined_at: datetime | None
    quarantine_reason: str | None
    golden: dict[str, Any]
    smoke: dict[str, Any]
    manifest: dict[str, Any]
    object: str = "adapter_version"


class LiveVersion(msgspec.Struct):
    process: str
    role: str
    host: str
    pid: int
    version: str
    sha256: str
    since: float | None
    seen_at: float


class Adapter(msgspec.Struct):
    name: str
    active: AdapterVersion | None
    versions: list[AdapterVersion]
    live: list[LiveVersion]
    object: str = "adapter"


class AdapterList(msgspec.Struct):
    data: list[Adapter]
    object: str = "list"


class ActivateBody(msgspec.Struct, forbid_unknown_fields=True):
    version: str | None = None
    sha256: str | None = None
    # Activate even a quarantined version.
    force: bool = False


class Activation(msgspec.Struct):
    name: str
    version: str
    sha256: str
    previous_sha256: str | None
    action: str
    changed: bool
    activated_at: datetime | None


def _view(row: VersionRow) -> AdapterVersion:
    return AdapterVersion(
        name=row.name, version=row.version, sha256=row.sha256, status=row.status,
        builtin=row.builtin, size=row.size, uploaded_at=row.uploaded_at,
        activated_at=row.activated_at, quarantined_at=row.quarantined_at,
        quarantine_reason=row.quarantine_reason, golden=row.golden, smoke=row.smoke,
        manifest=row.manifest)


async def _read_upload(request: Request[Any, Any, Any]) -> tuple[bytes, bytes | None]:
    """The module and, in a multipart upload, its golden vectors."""
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype in (WASM_TYPE, "application/octet-stream"):
        return await request.body(), None
    if ctype == "multipart/form-data":
        form = await request.form()
        parts: dict[str, bytes] = {}
        for field in ("module", "golden"):
            value = form.get(field)
            if isinstance(value, UploadFile):
                parts[field] = await value.read()
            elif isinstance(value, str):
                parts[field] = value.encode()
        if "module" not in parts:
            raise HermesError(Code.REQUEST_INVALID, "the multipart upload has no `module` part")
        return parts["module"], parts.get("golden")
    raise HermesError(Code.REQUEST_UNSUPPORTED_MEDIA_TYPE,
                      f"send the module as {WASM_TYPE}, or multipart/form-data with a "
                      "`module` part and an optional `golden` part")


def _deploy_error(exc: DeployError) -> HermesError:
    return HermesError(exc.code, exc.detail)


async def _activation(container: Container, name: str, change: Change | None,
                      sha256: str) -> Activation:
    row = await container.deploys.store.get(change.sha256 if change else sha256)
    assert row is not None
    if change is not None:
        await container.deploys.announce(change)
    return Activation(name=name, version=row.version, sha256=row.sha256,
                      previous_sha256=change.previous_sha256 if change else None,
                      action=change.action if change else "none", changed=change is not None,
                      activated_at=row.activated_at)


class AdminAdaptersController(Controller):
    path = "/admin/v1/adapters"
    tags = ["admin"]

    @post("/", status_code=201,
          summary="Upload an adapter version (validated, stored by SHA-256; not activated)")
    async def upload(
        self, request: Request[Any, Any, Any], admin: NamedDependency[str],
        container: NamedDependency[Container],
        name: Annotated[str | None, QueryParameter()] = None,
        version: Annotated[str | None, QueryParameter()] = None,
    ) -> Response[AdapterVersion]:
        wasm, golden = await _read_upload(request)
        sender = Sender(container.adapters, container.http, container.google_tokens,
                        public_url=container.settings.callback_base_url)
        checked = await gate.validate(container.adapters, sender, container.settings.sandbox_url,
                                      wasm, golden, name=name, version=version)
        a = checked.adapter
        try:
            row, created = await container.deploys.store.upload(
                Module(a.sha256, a.name, a.version, wasm, a.manifest),
                golden=checked.golden, smoke=checked.smoke)
        except DeployError as exc:
            raise _deploy_error(exc) from None
        return Response(_view(row), status_code=201 if created else 200)

    @get("/", summary="Adapters: their versions, and which one each process has live")
    async def list_adapters(self, admin: NamedDependency[str],
                            container: NamedDependency[Container]) -> AdapterList:
        rows = await container.deploys.store.versions()
        processes = await live_processes(container.redis)
        by_name: dict[str, list[AdapterVersion]] = {}
        for row in rows:
            by_name.setdefault(row.name, []).append(_view(row))
        data = []
        for name, versions in sorted(by_name.items()):
            live = [LiveVersion(process=p["process"], role=p.get("role", ""),
                                host=p.get("host", ""), pid=int(p.get("pid", 0)),
                                version=v["version"], sha256=v["sha256"], since=v.get("since"),
                                seen_at=float(p.get("at", 0.0)))
                    for p in processes if (v := (p.get("adapters") or {}).get(name))]
            active = next((v for v in versions if v.status == "active"), None)
            data.append(Adapter(name=name, active=active, versions=versions, live=live))
        return AdapterList(data=data)

    @post("/{name:str}/activate", status_code=200,
          summary="Make a version the active one; every process swaps to it")
    async def activate(self, name: FromPath[str], data: JSONBody[ActivateBody],
                       admin: NamedDependency[str],
                       container: NamedDependency[Container]) -> Activation:
        if (data.version is None) == (data.sha256 is None):
            raise HermesError(Code.REQUEST_INVALID, "give either `version` or `sha256`")
        store = container.deploys.store
        row = await store.find(name, version=data.version, sha256=data.sha256)
        if row is None:
            raise HermesError(Code.REQUEST_NOT_FOUND,
                              f"no version {data.version or data.sha256} of {name}")
        try:
            change = await store.activate(name, row.sha256, force=data.force)
        except DeployError as exc:
            raise _deploy_error(exc) from None
        return await _activation(container, name, change, row.sha256)

    @post("/{name:str}/rollback", status_code=200,
          summary="Return to the version active before the current one")
    async def rollback(self, name: FromPath[str], admin: NamedDependency[str],
                       container: NamedDependency[Container]) -> Activation:
        try:
            change = await container.deploys.store.rollback(name)
        except DeployError as exc:
            raise _deploy_error(exc) from None
        return await _activation(container, name, change, change.sha256)
