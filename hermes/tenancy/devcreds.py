"""The bootstrap tenant and credentials `hermes dev` writes to `.hermes/dev.env`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hermes.bootstrap import Container
from hermes.tenancy.secrets import digest, display_prefix, new_admin_token, new_api_key

DEV_TENANT = "dev"


@dataclass(frozen=True)
class DevCredentials:
    api_key: str
    admin_token: str


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.removeprefix("export ").strip()] = value.strip().strip("'\"")
    return values


async def ensure_dev_credentials(container: Container, env_file: Path) -> DevCredentials:
    """Reuse the credentials in `env_file` while they are valid; mint new ones otherwise."""
    existing = read_env_file(env_file)
    store = container.tenants

    api_key = existing.get("HERMES_API_KEY", "")
    if not api_key or await store.principal_for_key(digest(api_key)) is None:
        tenant = await store.find_tenant_by_name(DEV_TENANT) or await store.create_tenant(
            DEV_TENANT
        )
        api_key = new_api_key("test")
        await store.add_api_key(tenant.id, prefix=display_prefix(api_key),
                                key_hash=digest(api_key), mode="test",
                                scopes=["send", "read", "manage"])

    admin_token = existing.get("HERMES_ADMIN_TOKEN", "")
    if not admin_token or not await store.admin_token_exists(digest(admin_token)):
        admin_token = new_admin_token()
        await store.add_admin_token(prefix=display_prefix(admin_token),
                                    token_hash=digest(admin_token))
    return DevCredentials(api_key=api_key, admin_token=admin_token)


def write_env_file(path: Path, url: str, creds: DevCredentials) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        "# Written by `hermes dev`. Load with: set -a; . .hermes/dev.env; set +a\n"
        f"HERMES_URL={url}\n"
        f"HERMES_API_KEY={creds.api_key}\n"
        f"HERMES_ADMIN_TOKEN={creds.admin_token}\n"
    )
    os.chmod(tmp, 0o600)
    tmp.replace(path)
