"""`python -m compat`: the same as the `compat` command."""

import sys

from compat.cli import main

sys.exit(main())
