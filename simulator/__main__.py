"""`python -m simulator SERVER --email … --password …`: the simulator on its own (see simulator/cli.py)."""
import sys

from .cli import main

sys.exit(main())
