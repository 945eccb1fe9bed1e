"""``python -m ml2bench.bench {multilevel,schwarz,mgh} [options]``: the benchmark scripts by name."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(
            "usage: python -m ml2bench.bench {multilevel,schwarz,mgh} [options]  "
            "(python -m ml2bench.bench NAME --help: the options of NAME)"
        )
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name == "multilevel":
        from ml2bench.bench.multilevel import main as run_multilevel

        return run_multilevel(rest)
    if name == "mgh":
        from ml2bench.bench.mgh import main as run_mgh

        run_mgh(rest)
        return 0
    if name == "schwarz":
        from ml2bench.bench.schwarz import main as run_schwarz

        return run_schwarz(rest)
    print(f"unknown benchmark {name!r}; available: multilevel, schwarz, mgh", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
