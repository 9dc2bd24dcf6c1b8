"""The adapter registry: one `AdapterRuntime` per process and the active version of each adapter.

Adapters are addressed by name; the registry maps a name to the SHA-256 of its
active version, so a hot deploy (`hermes.providers.deploy`) only has to load the
new module and swap the mapping, while calls in flight finish on the old
version: each holds the `ActiveAdapter` it started with, and the runtime keeps
every loaded version until it is unloaded.
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


def cache_dir(settings: Settings) -> Path:
    """Compiled adapter code (and fetched modules) of this machine."""
    return Path(settings.adapter_cache_dir or settings.data_path / "adapter-cache")


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
        # Every version loaded in the runtime, and the versions provider accounts pin.
        self._loaded: dict[str, ActiveAdapter] = {}
        self._pinned: dict[tuple[str, str], ActiveAdapter] = {}
        # The built-in modules' bytes by sha256, so a rollback to one needs no fetch.
        self.builtin: dict[str, bytes] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> AdapterRegistry:
        cache = cache_dir(settings)
        cache.mkdir(parents=True, exist_ok=True)
        registry = cls(_core.AdapterRuntime(cache))
        registry.load_builtin()
        return registry

    def load_builtin(self, directory: Path = BUILTIN_DIR) -> list[ActiveAdapter]:
        loaded = []
        for path in sorted(directory.glob("*.wasm")):
            try:
                wasm = path.read_bytes()
                adapter = self.activate(wasm)
                self.builtin[adapter.sha256] = wasm
                loaded.append(adapter)
            except _core.AdapterError as exc:  # one broken module must not stop the others
                log.error("built-in adapter %s not loaded: %s", path.name, exc)
        return loaded

    def load(self, wasm: bytes) -> ActiveAdapter:
        """Validate, compile and load a module without making it active (CPU-bound: run it
        off the event loop). Raises `_core.AdapterError` (`adapter.invalid_module`)."""
        info = self.runtime.load(wasm)
        adapter = ActiveAdapter(name=info.name, version=info.version, sha256=info.sha256,
                                manifest=json.loads(info.manifest_json))
        self._loaded[adapter.sha256] = adapter
        return adapter

    def activate(self, wasm: bytes) -> ActiveAdapter:
        """Load a module and make it the active version of its adapter name."""
        return self.swap(self.load(wasm))

    def swap(self, adapter: ActiveAdapter) -> ActiveAdapter:
        """Make a loaded version the active one of its name: one assignment, so every call
        from here on gets it and none sees a half-made change."""
        assert adapter.sha256 in self._loaded, "swap to a version that is not loaded"
        self._active[adapter.name] = adapter
        return adapter

    def loaded(self, sha256: str) -> ActiveAdapter | None:
        return self._loaded.get(sha256)

    def unload(self, sha256: str) -> bool:
        """Forget a version nothing active or pinned uses; calls in flight on it finish."""
        in_use = {a.sha256 for a in self._active.values()} | {
            a.sha256 for a in self._pinned.values()}
        if sha256 in in_use or self._loaded.pop(sha256, None) is None:
            return False
        return self.runtime.unload(sha256)

    def set_pins(self, pins: dict[tuple[str, str], ActiveAdapter]) -> None:
        """The versions provider accounts pin, by (name, version); all loaded."""
        self._pinned = dict(pins)

    def get(self, name: str, version: str | None = None) -> ActiveAdapter:
        """The version of `name` to use: the pinned `version` when it is loaded, else the
        active one; `AdapterNotLoaded` if there is none."""
        if version is not None:
            pinned = self._pinned.get((name, version))
            if pinned is not None:
                return pinned
        found = self._active.get(name)
        if found is None:
            raise AdapterNotLoaded(name)
        return found

    def live(self) -> dict[str, ActiveAdapter]:
        """The active version of each adapter name."""
        return dict(self._active)

    def names(self) -> list[str]:
        return sorted(self._active)
