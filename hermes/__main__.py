import sys

from hermes.cli import main

sys.exit(main())
