"""`python -m hermes.sandbox [--port 8025 ...]` runs the provider sandbox alone."""

from hermes.sandbox.server import main

raise SystemExit(main())
