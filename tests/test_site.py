"""The course site builds strictly, has every page a reader expects and shows no answers.

The browser-level checks (rendering, links, search, Colab links in a real page) are in
``test_browser.py``; these read the build and the generator directly.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from grader.build.editions import secret_lines
from grader.lessons import ROOT, Lesson, all_lessons, read_source
from grader.markers import ALL as MARKERS
from grader.settings import _TolerantLoader, load_settings, publish_settings
from grader.site import assets as site_assets
from grader.site import pages as site_pages
from grader.site.syllabus import SYLLABUS

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
WRITTEN = [lesson for lesson in all_lessons() if lesson.student.exists()]
CDN_HOSTS = ("unpkg.com", "cdn.jsdelivr.net", "cdnjs.cloudflare.com", "fonts.googleapis.com", "fonts.gstatic.com")


@pytest.fixture(scope="module")
def site(built_site) -> Path:
    """The strict build of the site, made once per test run (``built_site`` in conftest.py)."""
    return built_site


def page(site: Path, path: str) -> str:
    return (site / path / "index.html").read_text(encoding="utf-8")


def mkdocs_config() -> dict:
    return yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=_TolerantLoader)


def test_every_planned_lesson_has_a_page(site):
    written = {lesson.slug for lesson in WRITTEN}
    for planned in SYLLABUS:
        text = page(site, f"lessons/{planned.slug}")
        if planned.slug in written:
            assert "Coming soon" not in text, f"{planned.slug} is written, but its page is still the placeholder"
        else:
            assert "Coming soon" in text and planned.summary[:30] in html.unescape(text), planned.slug


def test_lesson_pages_link_to_colab_and_a_valid_notebook(site, lesson):
    text = page(site, f"lessons/{lesson.slug}")
    colab = publish_settings().colab_url(f"{lesson.slug}.ipynb")
    assert colab in text, "the page has an Open in Colab link built from mkdocs.yml"
    assert f"/blob/{publish_settings().pages_branch}/notebooks/{lesson.slug}.ipynb" in colab
    notebook = site / "notebooks" / f"{lesson.slug}.ipynb"
    nbformat.validate(nbformat.read(notebook, as_version=4))
    assert (site / "notebooks" / f"{lesson.slug}.py").read_text(encoding="utf-8") == lesson.student.read_text(
        encoding="utf-8"), "the .py download is the student edition"
    assert f'download="{lesson.slug}.ipynb"' in text and f'download="{lesson.slug}.py"' in text


def test_lesson_page_renders_the_theory_from_the_student_edition(site, lesson):
    text = html.unescape(page(site, f"lessons/{lesson.slug}"))
    assert lesson.title().split("—")[-1].strip()[:20] in text
    assert 'class="arithmatex"' in text or "$" not in lesson.solution.read_text(encoding="utf-8")
    for cell in read_source(lesson.student).cells:  # every section heading of the lesson is on the page
        for line in cell.source.splitlines() if cell.cell_type == "markdown" else []:
            if line.startswith("## ") and "$" not in line:
                assert line[3:].strip().replace("`", "") in re.sub(r"<[^>]+>", "", text), line
    assert not (ROOT / "site" / "lessons").exists(), "lesson pages are generated, never copied into site/"


def test_student_pages_have_no_edit_links_no_author_guide_and_no_loopback_links(site):
    """The source repository (it holds solutions/) may be private: the published pages never link into it."""
    settings = publish_settings()
    for path in site.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        assert f"{settings.github_url}/edit/" not in text and "/solutions/" not in text, f"instructor link in {path}"
        assert not re.search(r'href="https?://(127\.0\.0\.1|localhost)', text), f"clickable loopback link in {path}"
    assert not (site / "authoring").exists(), "the author guide is not part of the student site"
    assert "authoring" not in page(site, "")


def test_an_instructor_build_keeps_edit_links_to_the_sources(monkeypatch):
    from grader.site import hooks

    monkeypatch.setenv("COURSE_SITE_EDITION", "instructor")
    config = mkdocs_config()
    config["theme"] = {"features": ["content.action.edit"]}
    config["extra_javascript"] = []
    hooks.on_config(config)
    assert config["edit_uri"] == f"edit/{load_settings().branch}/site/"
    assert "authoring.md" in json.dumps(config["nav"])
    monkeypatch.setenv("COURSE_SITE_EDITION", "student")
    config = mkdocs_config()
    config["theme"] = {"features": ["content.action.edit"]}
    config["extra_javascript"] = []
    hooks.on_config(config)
    assert config["edit_uri"] == "" and "authoring.md" not in json.dumps(config["nav"])
    assert "content.action.edit" not in config["theme"]["features"]


def test_the_distribution_holds_the_library_wheel_and_nothing_of_the_instructor(site, tmp_path):
    """The wheel installs and imports; it has the movierec package only, ranges for TensorFlow."""
    import zipfile

    wheel = site / "wheels" / publish_settings().wheel_name
    assert wheel.exists(), sorted(p.name for p in (site / "wheels").glob("*"))
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert {n.split("/")[0] for n in names} == {"movierec", f"movierec-{wheel.name.split('-')[1]}.dist-info"}
    assert not [n for n in names if "grader" in n or "solutions" in n]
    assert "Requires-Dist: tensorflow" in metadata and "tensorflow==" not in metadata, "ranges, never exact pins"
    target = tmp_path / "installed"
    process = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
                              "--target", str(target), str(wheel)], capture_output=True, text=True)
    assert process.returncode == 0, process.stderr
    probe = "import movierec.report as r, movierec; print(movierec.__version__, r.__file__)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(target)})
    assert out.returncode == 0 and str(target) in out.stdout, out.stderr


def test_syllabus_gives_the_time_of_every_lesson(site):
    text = page(site, "syllabus")
    for planned in SYLLABUS:
        assert f"{planned.minutes} min" in text and f"../lessons/{planned.slug}/" in text


def test_glossary_and_references_pages(site):
    glossary = page(site, "glossary")
    for term in ("In-batch softmax", "NDCG", "RMSE", "Recall@", "Two-tower model", "Annoy"):
        assert term in glossary, f"the glossary defines {term}"
    assert glossary.count('class="arithmatex"') >= 5, "the glossary gives the losses and metrics as formulas"
    references = html.unescape(page(site, "references"))
    for lesson in WRITTEN:
        cited = site_pages.lesson_references(lesson)
        assert cited, f"{lesson.slug} has a References section"
        for url in re.findall(r"<(https?://[^>]+)>", cited):
            assert url in references, f"{url}, cited by {lesson.slug}, is on the references page"


def test_home_page_has_the_architecture_and_the_three_ways(site):
    text = page(site, "")
    assert text.count('class="mermaid"') >= 2, "the two-stage architecture and the two-tower model"
    assert 'class="arithmatex"' in text
    for way in ("In Google Colab", "On your own machine", "As an instructor"):
        assert way in text


def test_theme_gives_readers_what_they_expect():
    config = mkdocs_config()
    features = set(config["theme"]["features"])
    assert {"navigation.tabs", "navigation.sections", "content.code.copy", "content.action.edit",
            "search.suggest"} <= features
    assert config["theme"]["font"] is False, "no Google Fonts: the site must work offline"
    assert len(config["theme"]["palette"]) == 2 and all("toggle" in p for p in config["theme"]["palette"])
    extensions = {e if isinstance(e, str) else next(iter(e)) for e in config["markdown_extensions"]}
    assert {"admonition", "pymdownx.arithmatex", "pymdownx.superfences", "pymdownx.details"} <= extensions
    fences = next(e for e in config["markdown_extensions"] if isinstance(e, dict) and "pymdownx.superfences" in e)
    assert any(f["name"] == "mermaid" for f in fences["pymdownx.superfences"]["custom_fences"])
    assert config["strict"] is True


def test_the_site_loads_nothing_from_a_cdn(site, assets_fetched):
    if not assets_fetched:
        if IN_CI:
            pytest.fail("CI must build the site with its own MathJax and mermaid (npm is needed: make assets)")
        pytest.skip("npm is not available, so this build loads MathJax and mermaid from a CDN (make assets)")
    for package in site_assets.PACKAGES:
        assert (site / package.site_script).is_file(), f"{package.name} is served by the site"
    for path in site.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        for host in CDN_HOSTS:
            assert host not in text, f"{path.relative_to(site)} loads from {host}"


def test_toc_shows_headings_without_tex(site):
    for lesson in WRITTEN:
        nav = re.findall(r'class="md-nav__link"[^>]*>(.*?)</a>', page(site, f"lessons/{lesson.slug}"), re.S)
        assert not [n for n in nav if "\\(" in n], f"{lesson.slug}: raw TeX in the table of contents"
    assert site_pages.plain_math(r"top-\(k\) in \(O(N \cdot d)\)") == "top-k in O(N · d)"


def test_no_solution_or_hidden_test_anywhere_in_the_site(site):
    """Grep every file of the built site — pages, notebooks, scripts, search index — for answers.

    This is the student distribution exactly as ``make deploy`` publishes it, the course
    library's wheel included (its files are read too).
    """
    markers = tuple(marker.lstrip("# ") for marker in MARKERS)
    # A line hidden in one lesson may be public code in *another* (a seeded generator, say);
    # secret_lines drops such lines, judging only by the hand-written sources. A hint in the
    # prose may also quote a line on purpose, wrapped over two lines: that is no leak either.
    prose = " ".join(" ".join(cell.source.split()) for lesson in all_lessons()
                     for cell in read_source(lesson.solution).cells if cell.cell_type == "markdown")
    secrets = {line for line in secret_lines(all_lessons()) if " ".join(line.split()) not in prose}
    checked = 0
    for path in site.rglob("*"):
        if not path.is_file() or path.suffix in {".png", ".woff", ".gz", ".ico", ".svg"}:
            continue
        if path.suffix == ".whl":  # every file inside the course library's wheel
            import zipfile

            with zipfile.ZipFile(path) as zf:
                text = "\n".join(zf.read(n).decode("utf-8", errors="ignore") for n in zf.namelist())
        else:
            text = path.read_text(encoding="utf-8", errors="ignore")
        if path.name == "search_index.json":
            docs = json.loads(text)["docs"]
            text = "\n".join(d["title"] + "\n" + d["text"] for d in docs if not d["location"].startswith("authoring"))
        checked += 1
        for marker in markers:
            assert marker not in text, f"{marker} in {path}"
        leaked = [line for line in secrets if html.escape(line, quote=False) in text or line in text]
        assert not leaked, f"solution code in {path}: {leaked[:3]}"
    assert checked > len(all_lessons())


# A 1×1 PNG, standing in for a figure of the reference run.
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg==")


@pytest.mark.skipif(not WRITTEN, reason="no lesson has a student edition yet")
def test_lesson_page_shows_the_reference_run_or_says_how_to_get_it(tmp_path, monkeypatch):
    lesson: Lesson = WRITTEN[0]
    settings = load_settings()
    monkeypatch.setattr(site_pages, "EXECUTED", tmp_path / "executed")
    monkeypatch.setattr(site_pages, "METRICS", tmp_path / "metrics")
    without = site_pages.lesson_page(lesson, settings)
    assert "make course" in without.markdown and not without.figures, "without a run, the page says how to get one"

    executed = read_source(lesson.student)
    demo = next(i for i, c in enumerate(executed.cells)
                if c.cell_type == "code" and not site_pages.is_exercise(c) and not site_pages.is_test(c)
                and "setup" not in site_pages.tags(c))
    executed.cells[demo].outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="a printed line\n[metric] demo.value = 0.5\n"),
        nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(PIXEL).decode()}),
        nbformat.v4.new_output("execute_result", data={"text/plain": "84.83563096500531"}, execution_count=1),
    ]
    (tmp_path / "executed").mkdir()
    stale = nbformat.v4.new_notebook(cells=executed.cells[:-1])  # a run of an older version of the lesson
    nbformat.write(stale, tmp_path / "executed" / f"{lesson.slug}.ipynb")
    outdated = site_pages.lesson_page(lesson, settings)
    assert site_pages.STALE_RESULTS in outdated.markdown and not outdated.figures, "a stale run is not shown"
    nbformat.write(executed, tmp_path / "executed" / f"{lesson.slug}.ipynb")
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / f"{lesson.slug}.jsonl").write_text(
        json.dumps({"name": "demo.value", "value": 0.5, "unit": ""}) + "\n", encoding="utf-8")
    shown = site_pages.lesson_page(lesson, settings)
    assert list(shown.figures.values()) == [PIXEL], "the figure of the reference run is published"
    figure = re.search(r'<figure class="course-figure" markdown>\s*!\[([^\]]+)\]\(([^)]+)\)'
                       r".*?<figcaption>(.+?)</figcaption>", shown.markdown, re.S)
    assert figure and figure[2] == f"figures/{lesson.slug}-{demo}-1.png", "the figure is on the page"
    assert figure[1] != "Figure from the reference run" and len(figure[1]) > 20, "a real alt text"
    assert figure[3].startswith("Figure 1."), "a numbered caption"
    assert "| Demo: value | 0.5 |" in shown.markdown, "the recorded number, labelled, after its cell"
    assert shown.markdown.index("a printed line") < shown.markdown.index("| Demo: value |")
    assert "[metric]" not in shown.markdown and "84.835" not in shown.markdown, "no metric lines or echoed values"
    assert 'class="cell-output"' in shown.markdown, "outputs are styled as outputs, not code"
    assert site_pages.NO_RESULTS not in shown.markdown and site_pages.STALE_RESULTS not in shown.markdown
    assert shown.markdown.count("make course") <= 1, "no per-cell nags"


def test_results_read_like_a_paper_table(monkeypatch):
    """Human labels, the quality bar beside a barred number, pass/fail — and "slow" for a time bar."""
    from grader.grading.quality_bars import BARS, Bar

    time_bar = Bar("ranking.best.seconds", "<", 120, "a wall-clock time: reported, not gated", gated=False)
    monkeypatch.setattr(site_pages, "BARS", (*BARS, time_bar))
    table = site_pages.results_table([
        {"name": "ranking.best.rmse", "value": 0.91, "unit": ""},
        {"name": "ranking.best.seconds", "value": 392.0, "unit": "s"},
        {"name": "ranking.baseline.rmse", "value": 1.2, "unit": ""},
        {"name": "retrieval.popularity.top_10", "value": 0.04, "unit": ""},
    ])
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert rows[0].startswith("| Ranking, best model: test RMSE | 0.91 | ≤ 0.92 |") and "pass" in rows[0]
    assert "392 s" in rows[1] and "&lt; 120 s" in rows[1] and "slow" in rows[1] and "fail" not in rows[1]
    assert "fail" in rows[2], "a gated bar that is missed fails"
    assert rows[3].startswith("| Retrieval, popularity: top-10 accuracy | 0.04 |")
    assert "retrieval.popularity" not in "".join(rows), "no internal metric keys as labels"


def test_syllabus_shows_measured_values_beside_the_targets(tmp_path, monkeypatch):
    lessons = {lesson.slug: lesson for lesson in WRITTEN}
    monkeypatch.setattr(site_pages, "METRICS", tmp_path)
    plain = site_pages.syllabus_page(lessons)
    assert "| Ranking, best model: test RMSE | ≤ 0.92 |" in plain and "| measured |" not in plain
    if not lessons:
        return
    slug = next(iter(lessons))
    (tmp_path / f"{slug}.jsonl").write_text(
        json.dumps({"name": "ranking.best.rmse", "value": 0.9, "unit": ""}) + "\n", encoding="utf-8")
    shown = site_pages.syllabus_page(lessons)
    assert "| Ranking, best model: test RMSE | ≤ 0.92 | 0.9 | " in shown and "pass" in shown
    assert "| Annoy index: recall@10 | ≥ 0.95 | — |" in shown, "a bar not measured yet says so"


def test_search_index_has_no_raw_tex(site):
    docs = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))["docs"]
    tex = re.compile(r"\\\(|\\\[|\\(?:frac|mathbf|langle|sum)\b")
    raw = [d["location"] for d in docs if tex.search(d["text"] + d["title"])]
    assert not raw, f"raw TeX in the search index: {raw[:5]}"
    formula = r"\[ s(q, c) = \langle \mathbf{u}(q), \mathbf{v}(c) \rangle \]"
    assert site_pages.plain_math(formula) == "s(q, c) = ⟨ u(q), v(c) ⟩"
    assert site_pages.plain_math(r"\(\frac{1}{B}\sum_{i=1}^{B} x_i\)") == "1/BΣ_i=1^B x_i"


def test_workflows_build_publish_and_test_with_the_readme_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    settings = load_settings()
    workflows = {p.stem: yaml.safe_load(p.read_text(encoding="utf-8"))
                 for p in (ROOT / ".github" / "workflows").glob("*.yml")}
    assert {"ci", "pages"} <= set(workflows)
    for name, flow in workflows.items():
        triggers = flow[True] if True in flow else flow["on"]  # YAML 1.1 reads the key `on` as True
        assert settings.branch in triggers["push"]["branches"], f"{name} runs on pushes to {settings.branch}"
        runs = [step["run"] for job in flow["jobs"].values() for step in job["steps"] if "run" in step]
        for command in runs:
            for line in command.splitlines():
                if line.strip().startswith(("make ", "bash ", ".ci/")):
                    assert line.strip() in readme, f"{name}: `{line.strip()}` is not a command the README describes"
    ci_runs = [s.get("run", "") for job in workflows["ci"]["jobs"].values() for s in job["steps"]]
    assert "bash .ci/run" in ci_runs, "CI runs the README's test command"
    pages_runs = [s.get("run", "") for job in workflows["pages"]["jobs"].values() for s in job["steps"]]
    assert "make course" in pages_runs and "make deploy" in pages_runs
    assert workflows["pages"]["permissions"]["contents"] == "write", "gh-deploy pushes to the pages branch"


def test_lessons_listed_in_the_nav_match_the_syllabus():
    nav = mkdocs_config()["nav"]
    lessons = next(item["Lessons"] for item in nav if isinstance(item, dict) and "Lessons" in item)
    assert lessons == [f"lessons/{planned.slug}.md" for planned in SYLLABUS]


def test_without_fetched_assets_the_build_falls_back_to_the_cdn(monkeypatch):
    """`mkdocs build` without npm still gives working pages: the hook swaps in the CDN copies."""
    from grader.site import hooks as mkdocs_hooks

    local = [package.site_script for package in site_assets.PACKAGES]
    config = {"extra_javascript": ["javascripts/mathjax.js", *local]}
    monkeypatch.setattr(site_assets, "missing", lambda: list(site_assets.PACKAGES))
    mkdocs_hooks.on_config(config)
    assert config["extra_javascript"] == ["javascripts/mathjax.js", *(p.cdn for p in site_assets.PACKAGES)]
    assert config["remote_branch"] == load_settings().pages_branch, "gh-deploy publishes to the pages branch"
    monkeypatch.setattr(site_assets, "missing", lambda: [])
    config = {"extra_javascript": ["javascripts/mathjax.js", *local]}
    mkdocs_hooks.on_config(config)
    assert config["extra_javascript"] == ["javascripts/mathjax.js", *local]
    listed = [str(s) for s in mkdocs_config()["extra_javascript"]]
    assert set(local) <= set(listed), "mkdocs.yml lists the local copies"
    own = [s for s in listed if s not in local]  # the site's own scripts, served from site/javascripts/
    assert own == ["javascripts/mathjax.js", "javascripts/sections.js"] and all(
        (ROOT / "site" / s).is_file() for s in own)


def test_vendored_tarballs_are_checked_against_their_pinned_integrity(tmp_path, monkeypatch):
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = b"console.log('not mermaid')"
        info = tarfile.TarInfo("package/dist/mermaid.min.js")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    monkeypatch.setattr(site_assets, "VENDOR", tmp_path)
    package = next(p for p in site_assets.PACKAGES if p.name == "mermaid")
    with pytest.raises(RuntimeError, match="integrity"):
        site_assets.unpack(package, buffer.getvalue())
    assert not (tmp_path / "mermaid").exists()


def _sections_page(numbered: int) -> str:
    """Rendered lesson HTML as mkdocs makes it: a title, an introduction, numbered sections, a Summary."""
    parts = ['<h1 id="lesson">Lesson</h1>\n<p>Introduction.</p>']
    for n in range(1, numbered + 1):
        parts.append(f'<h2 id="{n}-part-{n}">{n}. Part <code>{n}</code><a class="headerlink" href="#{n}-part-{n}" '
                     f'title="Permanent link">&para;</a></h2>\n<p>Text {n}.</p>\n<h3 id="exercise-{n}">Exercise</h3>\n'
                     '<div class="admonition question"><p>stub</p></div>')
    parts.append('<h2 id="summary">Summary</h2>\n<p>All of it.</p>')
    return "\n".join(parts)


def test_long_lessons_fold_their_numbered_sections_under_a_contents_box():
    folded = site_pages.fold_sections(_sections_page(4))
    assert folded.count('<details class="course-section"') == 4, "one fold per numbered section"
    assert folded.count('<details class="course-section" open>') == 1, "only the first section is open"
    assert folded.count("<details") == folded.count("</details>")
    box = folded[folded.index('<nav class="course-sections"'):folded.index("</nav>")]
    assert folded.index("</nav>") < folded.index('<h2 id="1-part-1"'), "the contents come before section 1"
    assert re.findall(r'href="#([^"]+)"', box) == ["1-part-1", "2-part-2", "3-part-3", "4-part-4", "summary"]
    assert "1. Part 1" in box and "¶" not in box, "each entry is the heading as a reader reads it"
    assert box.count("1 exercise") == 4, "each entry says what its section holds"
    for n in range(1, 5):  # headings, their ids and permalinks stay outside the folds: links keep working
        heading = folded.index(f'<h2 id="{n}-part-{n}">')
        assert folded.index(f'id="exercise-{n}"') > folded.index("<details", heading)
        assert folded.rfind("</details>", 0, heading) == -1 or folded.rfind("</details>", 0, heading) > \
            folded.rfind("<details", 0, heading), f"heading {n} sits outside every fold"
    summary = folded[folded.index('<h2 id="summary">'):]
    assert "<details" not in summary and "All of it." in summary, "Summary and References stay open"
    short = _sections_page(site_pages.MIN_FOLDED_SECTIONS - 1)
    assert site_pages.fold_sections(short) == short, "a short lesson reads as one open page"


def test_built_lesson_pages_are_folded_with_a_contents_box_that_links_every_section(site):
    for lesson in WRITTEN:
        text = page(site, f"lessons/{lesson.slug}")
        numbered = re.findall(r'<h2 id="([^"]+)"[^>]*>\d+\.', text)
        if len(numbered) < site_pages.MIN_FOLDED_SECTIONS:
            continue
        box = text[text.index('<nav class="course-sections"'):]
        box = box[:box.index("</nav>")]
        targets = re.findall(r'href="#([^"]+)"', box)
        assert targets[:len(numbered)] == numbered, f"{lesson.slug}: the contents list every numbered section"
        ids = set(re.findall(r'\sid="([^"]+)"', text))
        assert set(targets) <= ids, f"{lesson.slug}: a contents link without its heading"
        assert text.count('<details class="course-section"') == len(numbered), lesson.slug
        assert "javascripts/sections.js" in text, f"{lesson.slug}: the script that opens a linked section"
    assert (site / "javascripts" / "sections.js").is_file()
