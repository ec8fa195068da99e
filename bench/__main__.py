"""`python -m bench` (what `make bench` runs)."""

import sys

from .run import main

# Guarded: the end-to-end poller's process starts by importing this module afresh.
if __name__ == "__main__":
    sys.exit(main())
