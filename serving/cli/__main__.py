"""`python -m serving.cli` is the `serving` command."""

import sys

from serving.cli import main

sys.exit(main())
