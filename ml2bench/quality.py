"""``python -m ml2bench.quality``: the quality regression sweep against its reference (kept as an
entry point; the code is :mod:`ml2bench.sweep.quality`, also ``ml2bench quality``)."""

import sys

from ml2bench.sweep.quality import main

if __name__ == "__main__":
    sys.exit(main())
