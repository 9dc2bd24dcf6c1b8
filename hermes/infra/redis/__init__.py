"""infra redis package."""
