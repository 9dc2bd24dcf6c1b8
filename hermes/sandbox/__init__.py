"""The provider sandbox: fake Twilio, Messente, SES (+SNS), FCM and WhatsApp Cloud.

See README.md in this folder for the magic recipients, the control API and
the sandbox credentials.
"""

from hermes.sandbox.server import Sandbox, main, serve

__all__ = ["Sandbox", "main", "serve"]
