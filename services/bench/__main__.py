"""`python -m services.bench` (what `make bench` runs)."""

import sys

from .run import main

sys.exit(main())
