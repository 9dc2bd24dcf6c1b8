"""The provider sandbox: fake Twilio, Messente, SES (+SNS), FCM and WhatsApp Cloud.

See README.md in this folder for the magic recipients, the control API and
the sandbox credentials. `Sandbox`, `serve` and `main` live in
`hermes.sandbox.server`; they are re-exported lazily so that
`python -m hermes.sandbox.server` does not import the module twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hermes.sandbox.server import Sandbox, main, serve

__all__ = ["Sandbox", "main", "serve"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from hermes.sandbox import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
