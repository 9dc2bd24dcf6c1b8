"""Metrics (Prometheus), traces (OpenTelemetry) and structured logs for every Hermes process."""
