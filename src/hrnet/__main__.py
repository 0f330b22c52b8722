"""``python -m hrnet``: the same command line as the ``hrnet`` script."""

import sys

from hrnet.cli import main

sys.exit(main())
