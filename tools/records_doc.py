"""Regenerate the column tables of docs/records.md from the schema in ``ml2bench.core.records`` (and
the stop reasons from ``ml2bench.core.stop``).

Why: the records schema is data in the code (``HISTORY_COLUMNS``, ``SUMMARY_COLUMNS``: column ->
meaning); a table typed into the docs by hand drifts from it. docs/records.md holds marker comments
around each generated table,

    <!-- records:history:begin -->
    ...generated...
    <!-- records:history:end -->

and this script replaces what lies between them (:data:`TABLES`: one entry per block).

    python tools/records_doc.py            # rewrite docs/records.md
    python tools/records_doc.py --check    # exit 1 when docs/records.md differs (tests/test_docs.py)

Exit status: 0 written / up to date, 1 (--check) the file differs, 2 bad input (missing file or markers).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling tool, also when loaded by path
from readme_results import ReadmeError, replace_block  # noqa: E402

DOC = Path(__file__).resolve().parents[1] / "docs" / "records.md"


def column_table(columns: Mapping[str, str], header: str = "column") -> str:
    """A Markdown table ``| column | meaning |`` with one row per column, in the given order."""
    lines = [f"| {header} | meaning |", "|---|---|"]
    lines += [f"| `{name}` | {_cell(text)} |" for name, text in columns.items()]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", r"\|")


def _history() -> str:
    from ml2bench.core.records import HISTORY_COLUMNS

    return column_table(HISTORY_COLUMNS, "history column")


def _summary() -> str:
    from ml2bench.core.records import SUMMARY_COLUMNS

    return column_table(SUMMARY_COLUMNS, "summary column")


def _stop() -> str:
    from ml2bench.core.stop import markdown

    return markdown()


TABLES: dict[str, Callable[[], str]] = {"history": _history, "summary": _summary, "stop": _stop}


def render(text: str) -> str:
    """``text`` with every block of :data:`TABLES` regenerated."""
    for name, table in TABLES.items():
        text = replace_block(text, name, table(), kind="records")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/records_doc.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--doc", type=Path, default=DOC, help="the Markdown file (default: docs/records.md)")
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 when the file differs")
    args = parser.parse_args(argv)
    try:
        if not args.doc.is_file():
            raise ReadmeError(f"{str(args.doc)!r} not found")
        text = args.doc.read_text()
        new = render(text)
    except ReadmeError as err:
        print(f"error: {args.doc}: {err}", file=sys.stderr)
        return 2
    if args.check:
        if new != text:
            print(
                f"{args.doc}: the column tables differ from ml2bench.core.records (run {parser.prog})", file=sys.stderr
            )
            return 1
        return 0
    if new != text:
        args.doc.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
