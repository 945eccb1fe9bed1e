"""``python -m ml2bench.bench multilevel [--seeds 3] [--quick]``."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m ml2bench.bench {multilevel,schwarz} [options]  (multilevel: [--seeds N] [--quick] [--target LOSS] [--budget WU])")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name == "multilevel":
        from .multilevel import main as run_multilevel
        return run_multilevel(rest)
    if name == "schwarz":
        from .schwarz import main as run_schwarz
        return run_schwarz(rest)
    print(f"unknown benchmark {name!r}; available: multilevel, schwarz", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
