"""Hermes: a multi-tenant, multi-channel message broker with cascading fallback."""

__version__ = "0.1.0"
