"""infra postgres package."""
