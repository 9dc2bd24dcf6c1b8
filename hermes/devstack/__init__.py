"""The embedded stack: PostgreSQL, NATS JetStream and Redis as child processes.

`hermes dev`, the test suite and the benchmarks all start their services through
`Stack`, so they run the same binaries the same way.
"""

from hermes.devstack.stack import Stack, StackUrls

__all__ = ["Stack", "StackUrls"]
