"""``python -m ml2bench.targets``: classification targets by the stated rule, and sweep-time
estimates (kept as an entry point; the code is :mod:`ml2bench.sweep.targets`, also ``ml2bench targets``)."""

import sys

from ml2bench.sweep.targets import main

if __name__ == "__main__":
    sys.exit(main())
