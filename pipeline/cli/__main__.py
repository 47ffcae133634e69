"""`python -m pipeline.cli`, as the `signals` script."""

import sys

from pipeline.cli import main

sys.exit(main())
