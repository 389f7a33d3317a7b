"""`python -m fntree` is the `fntree` command."""

import sys

from fntree.cli import main

sys.exit(main())
