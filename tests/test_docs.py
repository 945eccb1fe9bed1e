"""The docs a newcomer reads: a one-screen README with the commands that work, relative links that
resolve, and generated tables that match the code."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SETUP = "pip install -e . && snakemake --cores all"
TESTS = 'pip install -e ".[test]" && python -m pytest'

_spec = importlib.util.spec_from_file_location("records_doc", REPO / "tools" / "records_doc.py")
records_doc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(records_doc)


def markdown_files(repo: Path = REPO) -> list[Path]:
    """README.md, CONTRIBUTING.md (where present) and every page under docs/."""
    files = [repo / "README.md", repo / "CONTRIBUTING.md", *sorted((repo / "docs").rglob("*.md"))]
    return [f for f in files if f.is_file()]


_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)


def _prose(text: str) -> str:
    """Markdown without code blocks, inline code and comments (links there are not links)."""
    return _CODE.sub("", _COMMENT.sub("", _FENCE.sub("", text)))


def anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to '-', repeats numbered."""
    seen: dict[str, int] = {}
    out = set()
    for heading in _HEADING.findall(_COMMENT.sub("", _FENCE.sub("", text))):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def broken_links(path: Path, repo: Path = REPO) -> list[str]:
    """Relative links in ``path`` whose file (or heading anchor) does not exist."""
    bad = []
    for target in _LINK.findall(_prose(path.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists() or not dest.resolve().is_relative_to(repo.resolve()):
            bad.append(f"{path.relative_to(repo)}: {target} (no such file)")
        elif anchor and dest.is_file() and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
            bad.append(f"{path.relative_to(repo)}: {target} (no such heading)")
    return bad


def test_readme_fits_one_screen_and_carries_the_two_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= 150
    assert SETUP in text and TESTS in text
    # .ci/run runs exactly the README's test command
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines() if line.strip()]
    assert ci[-1] == TESTS


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(path):
    assert broken_links(path) == []


def test_link_check_notices_missing_files_and_headings(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Title\n\n## Two words\n")
    page = tmp_path / "README.md"
    page.write_text(
        "[ok](docs/a.md) [ok](docs/a.md#two-words) [web](https://example.org/x) `[code](nowhere.md)`\n"
        "<!-- [comment](nowhere.md) -->\n```\n[fenced](nowhere.md)\n```\n"
        "[gone](docs/b.md) [bad anchor](docs/a.md#three) ![img](docs/img/x.png)\n"
    )
    assert broken_links(page, tmp_path) == [
        "README.md: docs/b.md (no such file)",
        "README.md: docs/a.md#three (no such heading)",
        "README.md: docs/img/x.png (no such file)",
    ]


def test_anchors_follow_github():
    text = "# `rmtr`: recursive multilevel trust region\n## Hybrid stochastic–deterministic mode\n## Notes\n## Notes\n"
    assert anchors(text) == {
        "rmtr-recursive-multilevel-trust-region",
        "hybrid-stochasticdeterministic-mode",
        "notes",
        "notes-1",
    }


def test_records_doc_is_generated_from_the_schema(tmp_path):
    assert records_doc.main(["--check"]) == 0, "run python tools/records_doc.py"
    # a stale copy is noticed and rewritten
    stale = tmp_path / "records.md"
    stale.write_text(records_doc.DOC.read_text().replace("| `work_units` |", "| `work_unit` |"))
    assert records_doc.main(["--doc", str(stale), "--check"]) == 1
    assert records_doc.main(["--doc", str(stale)]) == 0
    assert stale.read_text() == records_doc.DOC.read_text()
    missing = tmp_path / "no-markers.md"
    missing.write_text("# records\n")
    assert records_doc.main(["--doc", str(missing)]) == 2
