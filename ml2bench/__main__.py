import sys

from ml2bench.cli import main

sys.exit(main())
