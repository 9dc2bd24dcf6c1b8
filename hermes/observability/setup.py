"""What each process does first: logging in the chosen format, tracing if configured."""

from __future__ import annotations

import atexit
import logging

from hermes.observability import logging as logs
from hermes.observability import tracing
from hermes.settings import Settings

log = logging.getLogger("hermes")


def setup_process(service: str, settings: Settings) -> None:
    """Configure logs and traces for `hermes <service>`."""
    fmt = logs.configure(settings.log_level, settings.log_format)
    if tracing.setup(service, settings.trace_file):
        atexit.register(tracing.shutdown)  # flush what the batch exporter still holds
        log.info("tracing on (service hermes-%s)", service)
    log.debug("logging as %s", fmt)
