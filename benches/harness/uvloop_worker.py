"""`hermes worker` on uvloop instead of asyncio's loop, to measure what the loop costs.

    python -m benches.harness e2e --worker-loop uvloop
"""

from __future__ import annotations

import logging

import uvloop

from hermes.settings import load_settings
from hermes.worker import run_worker


def main() -> int:
    # As hermes.cli.main configures logging (the harness waits for "worker ready").
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvloop.run(run_worker(load_settings()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
