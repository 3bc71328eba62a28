"""The course site builds strictly, has a page per lesson and shows no answers."""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from grader.editions import secret_lines
from grader.lessons import ROOT, all_lessons
from grader.settings import load_settings
from grader.syllabus import SYLLABUS


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    process = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert process.returncode == 0, process.stdout + process.stderr
    return out


def test_every_planned_lesson_has_a_page(site):
    for planned in SYLLABUS:
        page = site / "lessons" / planned.slug / "index.html"
        assert page.exists(), f"no page for {planned.slug}"


def test_lesson_pages_link_to_colab_and_a_valid_notebook(site, lesson):
    html = (site / "lessons" / lesson.slug / "index.html").read_text(encoding="utf-8")
    colab = load_settings().colab_url(f"{lesson.slug}.ipynb")
    assert colab in html, "the page has an Open in Colab link built from mkdocs.yml"
    notebook = site / "notebooks" / f"{lesson.slug}.ipynb"
    nbformat.validate(nbformat.read(notebook, as_version=4))
    assert (site / "notebooks" / f"{lesson.slug}.py").exists()


def test_lesson_page_renders_the_theory(site, lesson):
    html = (site / "lessons" / lesson.slug / "index.html").read_text(encoding="utf-8")
    assert lesson.title().split("—")[-1].strip()[:20] in html
    assert 'class="arithmatex"' in html or "$" not in lesson.solution.read_text(encoding="utf-8")


def test_no_solution_or_hidden_test_anywhere_in_the_site(site):
    """Grep every built lesson page, notebook and search entry for answers and markers.

    The authoring guide is the one page allowed to *name* the markers, so it is skipped.
    """
    markers = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
    secrets = set().union(*(secret_lines(lesson) for lesson in all_lessons()))
    checked = 0
    for path in site.rglob("*"):
        if path.suffix not in {".html", ".ipynb", ".py", ".json", ".md", ".txt"} or "authoring" in path.parts:
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        if path.name == "search_index.json":
            docs = json.loads(text)["docs"]
            text = "\n".join(d["text"] for d in docs if not d["location"].startswith("authoring"))
        checked += 1
        for marker in markers:
            assert marker not in text, f"{marker} in {path}"
        leaked = [line for line in secrets if html.escape(line, quote=False) in text or line in text]
        assert not leaked, f"solution code in {path}: {leaked[:3]}"
    assert checked > len(all_lessons())
