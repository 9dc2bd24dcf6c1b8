"""The adapter registry: one `AdapterRuntime` per process and the active version of each adapter.

Adapters are addressed by name; the registry maps a name to the SHA-256 of its
active version, so a hot deploy (a later change) only has to load the new module
and swap the mapping, while calls in flight finish on the old version.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hermes import _core
from hermes.settings import Settings

log = logging.getLogger("hermes.adapters")

BUILTIN_DIR = Path(__file__).parent / "builtin"


class AdapterNotLoaded(LookupError):
    """No version of the named adapter is loaded in this process."""


@dataclass(frozen=True)
class ActiveAdapter:
    name: str
    version: str
    sha256: str
    manifest: dict[str, Any]

    @property
    def token(self) -> dict[str, Any] | None:
        """The bearer token the host must mint for this adapter (`{"kind", "scopes"}`), if any."""
        token = self.manifest.get("token")
        return token if isinstance(token, dict) else None


class AdapterRegistry:
    def __init__(self, runtime: _core.AdapterRuntime) -> None:
        self.runtime = runtime
        self._active: dict[str, ActiveAdapter] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> AdapterRegistry:
        cache = Path(settings.adapter_cache_dir or settings.data_path / "adapter-cache")
        cache.mkdir(parents=True, exist_ok=True)
        registry = cls(_core.AdapterRuntime(cache))
        registry.load_builtin()
        return registry

    def load_builtin(self, directory: Path = BUILTIN_DIR) -> list[ActiveAdapter]:
        loaded = []
        for path in sorted(directory.glob("*.wasm")):
            try:
                loaded.append(self.activate(path.read_bytes()))
            except _core.AdapterError as exc:  # one broken module must not stop the others
                log.error("built-in adapter %s not loaded: %s", path.name, exc)
        return loaded

    def activate(self, wasm: bytes) -> ActiveAdapter:
        """Load a module and make it the active version of its adapter name."""
        info = self.runtime.load(wasm)
        active = ActiveAdapter(name=info.name, version=info.version, sha256=info.sha256,
                               manifest=json.loads(info.manifest_json))
        self._active[info.name] = active
        return active

    def get(self, name: str) -> ActiveAdapter:
        """The active version of `name`; `AdapterNotLoaded` if there is none."""
        found = self._active.get(name)
        if found is None:
            raise AdapterNotLoaded(name)
        return found

    def names(self) -> list[str]:
        return sorted(self._active)
