"""The throughput harness: Hermes as processes on this machine, driven by a separate load generator.

    python -m benches.harness ingest|single|e2e [--seconds N] [--json out.json]

Each run starts a private stack (PostgreSQL, NATS JetStream, Redis from
`hermes.devstack.Stack` in a temporary directory), migrates it, creates a test-mode
tenant and API key, starts `hermes api` (and for e2e `hermes worker`, `hermes sandbox`
and a webhook receiver) as processes, and drives them from a load-generator process
(`benches.harness.loadgen`). CPU seconds per process come from /proc.
"""
