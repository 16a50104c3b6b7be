"""The docs hold together: every relative link in README.md and docs/*.md resolves (the file or
folder exists; a #anchor is a heading of the target page, slugged as GitHub slugs headings), and
every tests/...py file the pages name exists. Reads the Markdown only: no dlx process."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
_ATX = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_TEST_FILE = re.compile(r"(?<![\w./-])(tests/[\w./-]*?\w\.py)(?![\w])")


def prose(text: str) -> list[str]:
    """The lines of a Markdown page outside code blocks (fenced, or indented by 4 spaces after a
    blank line), which is where links and headings live."""
    out, fence, indented, previous_blank = [], None, False, True
    for line in text.splitlines():
        m = _FENCE.match(line)
        if fence:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = None
            out.append("")
            continue
        if m:
            fence = m.group(1)
            out.append("")
            continue
        if line.startswith(("    ", "\t")) and (previous_blank or indented):
            indented = True
            out.append("")
            continue
        indented = False
        previous_blank = not line.strip()
        out.append(line)
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text without Markdown, lowercased, every character
    but letters, digits, '_', '-' and spaces dropped, spaces turned into '-'."""
    text = re.sub(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\([^)]*\)", r"\1", heading)  # links: their text
    text = _CODE_SPAN.sub(r"\2", text)
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every #anchor a page's headings give, duplicates numbered -1, -2 ... as GitHub does."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    lines = prose(page.read_text(encoding="utf-8"))
    headings = []
    for i, line in enumerate(lines):
        m = _ATX.match(line)
        if m:
            headings.append(m.group(2))
        elif i and re.fullmatch(r" {0,3}(=+|-+)\s*", line) and lines[i - 1].strip() \
                and not lines[i - 1].lstrip().startswith(("|", "#", "-", "*")):
            headings.append(lines[i - 1].strip())  # a setext heading (text, then === or ---)
    for text in headings:
        base = slug(text)
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(page: Path) -> list[str]:
    """The link targets of a page's prose: inline links and images, and reference definitions
    (code spans are not links)."""
    out = []
    for line in prose(page.read_text(encoding="utf-8")):
        ref = _REFERENCE.match(line)
        if ref:
            out.append(ref.group(1))
            continue
        out += _LINK.findall(_CODE_SPAN.sub("code", line))
    return out


def broken_links(page: Path) -> list[str]:
    problems = []
    for target in links(page):
        if not target or _SCHEME.match(target) or target.startswith("//"):
            continue  # a web address or mail link: not this repository's to check
        path, _, anchor = target.partition("#")
        where = (page.parent / path).resolve() if path else page
        shown = where.relative_to(ROOT) if where.is_relative_to(ROOT) else where
        if not where.exists():
            problems.append(f"{target}: {shown} does not exist")
        elif anchor and where.suffix == ".md" and anchor not in anchors(where):
            problems.append(f"{target}: no heading with anchor #{anchor} in {shown}")
    return problems


def test_slugs_follow_githubs_rules(tmp_path):
    assert slug("What a run records") == "what-a-run-records"
    assert slug("Grid: `sweep=grid`") == "grid-sweepgrid"
    assert slug("DDP: one run on several processes or GPUs") == \
        "ddp-one-run-on-several-processes-or-gpus"
    assert slug("The [pickle](x.md) policy") == "the-pickle-policy"
    assert slug("dlx --help (external timer)") == "dlx---help-external-timer"
    page = "# A\n\n    # not a heading\n\n```\n# nor this\n```\n\n## A\n\nB c\n---\n"
    (tmp_path / "page.md").write_text(page)
    assert anchors(tmp_path / "page.md") == {"a", "a-1", "b-c"}


def test_links_skip_code_and_find_references(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[a](one.md#x) and `[b](two.md)`\n\n    [c](three.md)\n\n[d]: four.md\n"
                    "![e](img.png \"title\")\n")
    assert links(page) == ["one.md#x", "four.md", "img.png"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert page.is_file()
    assert broken_links(page) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_test_file_named_exists(page):
    named = sorted(set(_TEST_FILE.findall(page.read_text(encoding="utf-8"))))
    missing = [name for name in named if not (ROOT / name).is_file()]
    assert missing == [], f"{page.relative_to(ROOT)} names test files that do not exist"


def test_the_reference_pages_exist():
    names = {p.name for p in PAGES}
    assert {"README.md", "datasets.md", "models.md", "training.md", "records.md", "sweeps.md",
            "predict.md", "performance.md", "guarantees.md"} <= names
