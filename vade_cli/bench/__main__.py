"""`python -m vade_cli.bench`."""

import sys

from vade_cli.bench.cli import main

sys.exit(main())
