"""The documentation site builds with every link and anchor checked, and the README's links land.

``mkdocs build --strict`` turns each of mkdocs.yml's ``validation`` warnings (a link to a missing
page, an anchor no heading makes, a page left out of the nav) into a failure, so a broken link
fails ``make test``. The README lives outside ``docs/`` (GitHub shows it), so its links into the
site are checked here against the headings of the pages they name.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from markdown.extensions.toc import slugify

PROJECT_DIR = Path(__file__).resolve().parents[2]
DOCS = PROJECT_DIR / "docs"
README = (PROJECT_DIR / "README.md").read_text()


def test_the_site_builds_strict(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "deploy" / "index.html").exists()


def build_a_copy(tmp_path: Path, pages: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Build a copy of the site with ``pages`` written over it (path under docs/ -> text)."""
    config = yaml.safe_load((PROJECT_DIR / "mkdocs.yml").read_text())
    docs = tmp_path / "docs"
    subprocess.run(["cp", "-r", str(DOCS), str(docs)], check=True)
    for name, text in pages.items():
        (docs / name).parent.mkdir(parents=True, exist_ok=True)
        (docs / name).write_text(text)
    config.update(docs_dir=str(docs), site_dir=str(tmp_path / "site"))
    for ext in config["markdown_extensions"]:
        if isinstance(ext, dict) and "pymdownx.snippets" in ext:
            ext["pymdownx.snippets"]["base_path"] = [str(PROJECT_DIR)]
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


def test_a_broken_anchor_fails_the_build(tmp_path: Path) -> None:
    # The check itself can fail: a copy of the site with one bad anchor does not build.
    result = build_a_copy(tmp_path, {"design/index.md": "# x\n\n[gone](../deploy.md#no-such-heading)\n"})
    assert result.returncode != 0
    assert "no-such-heading" in result.stderr


def headings(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {slugify(m, "-") for m in re.findall(r"^#{1,6} (.+)$", text, re.M)}


README_LINKS = sorted(set(re.findall(r"\]\((docs/[^)#\s]+)(#[^)\s]+)?\)", README)))


def test_the_readme_links_into_the_site() -> None:
    assert len({path for path, _ in README_LINKS}) >= 15


@pytest.mark.parametrize(("path", "anchor"), README_LINKS)
def test_every_readme_link_lands(path: str, anchor: str) -> None:
    target = PROJECT_DIR / path
    assert target.exists(), path
    if anchor:
        assert anchor[1:] in headings(target), f"{path}{anchor}"


def test_the_readme_is_a_front_page() -> None:
    assert len(README.splitlines()) <= 250
