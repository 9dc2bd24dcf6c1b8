"""What each process does first: logging in the chosen format, tracing if configured, and
the garbage collector tuned for a long-running server."""

from __future__ import annotations

import atexit
import gc
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
    tune_gc(settings.gc_gen0_threshold)


def tune_gc(gen0_threshold: int) -> None:
    """Collect cyclic garbage less often than CPython's default (every 700 net
    allocations), and never rescan what was loaded at start.

    A server allocates and frees many small objects per request (a message, a task, a
    few dicts), almost all freed by reference counting; with the default threshold the
    collector still walks the young generation hundreds of times a second under load.
    `gc.freeze()` moves everything allocated so far (modules, the app, its settings) to a
    generation the collector skips. 0 keeps CPython's defaults.
    """
    if gen0_threshold <= 0:
        return
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)
