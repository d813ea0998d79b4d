"""README.md and docs/*.md: every relative link (and image) names a file that exists, and every #anchor a heading.

Anchors follow GitHub's rule for heading ids: lower case, punctuation other than hyphens dropped, spaces to hyphens.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def heading_ids(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)  # a shell comment is no heading
    titles = re.findall(r"^#{1,6} +(.+?) *$", text, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", t.lower()).replace(" ", "-") for t in titles}


def relative_links(page: Path) -> list[str]:
    text = re.sub(r"<!--.*?-->", "", page.read_text(encoding="utf-8"), flags=re.S)
    return [t for t in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]  # http:, https:, mailto:


def test_the_pages_exist_and_link_somewhere():
    assert len(PAGES) > 5
    assert all(relative_links(page) for page in PAGES)  # every docs page links back at least


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page: Path):
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.is_file():
            broken.append(f"{target}: no file {file.relative_to(REPO) if file.is_relative_to(REPO) else file}")
        elif anchor and file.suffix == ".md" and anchor not in heading_ids(file):
            broken.append(f"{target}: no heading #{anchor} in {file.relative_to(REPO)}")
    assert not broken, f"{page.relative_to(REPO)}:\n" + "\n".join(broken)


def test_the_readme_links_every_docs_page_and_stays_short():
    readme = REPO / "README.md"
    linked = {(readme.parent / t.partition("#")[0]).resolve() for t in relative_links(readme)}
    assert set(PAGES[1:]) <= linked, sorted(str(p) for p in set(PAGES[1:]) - linked)
    assert len(readme.read_text(encoding="utf-8").splitlines()) <= 200


def test_a_broken_link_is_found(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](page.md#title) [gone](nothere.md) [web](https://example.com) [bad](#nope)\n")
    assert relative_links(page) == ["page.md#title", "nothere.md", "#nope"]
    assert heading_ids(page) == {"title"}
