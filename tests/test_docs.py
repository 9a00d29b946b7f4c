"""The README and docs/benchmarks.md point at things that exist: benchmark scripts, sections the code cites."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BENCHMARKS_PAGE = (ROOT / "docs" / "benchmarks.md").read_text()


def _section(text: str, heading: str) -> str:
    """The text under ``heading`` (a level-2 heading) up to the next level-2 heading."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def test_every_benchmark_the_summary_names_is_a_script_in_benchmarks():
    summary = _section(README, "How well it works")
    named = set(re.findall(r"\b([a-z_]+\.py)\b", summary))
    assert {"ligand_placement.py", "realistic_maps.py", "screening.py", "backbone.py"} <= named
    missing = sorted(name for name in named if not (ROOT / "benchmarks" / name).is_file())
    assert not missing, missing


def test_sections_that_code_comments_cite_exist_in_the_benchmarks_page():
    headings = {line.lstrip("#").strip().strip('"') for line in BENCHMARKS_PAGE.splitlines() if line.startswith("#")}
    cited = set()
    for path in [*ROOT.joinpath("ligfit").rglob("*.py"), *ROOT.joinpath("tests").glob("*.py"), *ROOT.joinpath("benchmarks").glob("*.py")]:
        cited |= set(re.findall(r'docs/benchmarks\.md,? \(?"([^"]+)"', path.read_text()))
    assert {"Round 11", "Screening a library"} <= cited
    missing = sorted(name for name in cited if not any(heading.startswith(name) for heading in headings))
    assert not missing, missing


def test_readme_keeps_the_two_set_up_commands_and_links_the_full_measurements():
    commands = _section(README, "Two commands")
    assert "pip install torch==2.13.0 -e . && ligfit build examples/tyk2/map.mrc" in commands
    assert 'pip install torch==2.13.0 -e ".[test]" && python -m pytest -q' in commands
    assert "](docs/benchmarks.md)" in README


def _github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation but '-' and '_' dropped, spaces as '-'."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def test_the_benchmarks_page_lists_every_section_in_order_with_working_links():
    sections = [line[4:].strip() for line in BENCHMARKS_PAGE.splitlines() if line.startswith("### ")]
    contents = _section(BENCHMARKS_PAGE, "Contents")
    listed = re.findall(r"^- \[(.+)\]\(#([^)]+)\)$", contents, flags=re.MULTILINE)
    assert [title for title, _ in listed] == sections
    assert all(anchor == _github_anchor(title) for title, anchor in listed)
