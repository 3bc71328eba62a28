"""MkDocs hooks (see ``hooks:`` in mkdocs.yml): generate the lesson pages at build time.

Nothing generated here is written into ``site/``: lesson pages, the syllabus, figures
and downloadable notebooks exist only in the build, so they can never go stale.

* ``on_config``: the repository, edit links, the site's address and the ``gh-deploy``
  branch come from the one publishing setting (``extra.course``); MathJax and mermaid are served
  from the site when ``make assets`` has fetched them, else from the CDN (with a note).
* ``on_files``: one page per planned lesson (the real lesson when its student edition
  exists, a "coming soon" page otherwise), the syllabus, figures of the reference run,
  the student notebooks and scripts, and the vendored JavaScript.
* ``on_page_markdown``: the references page gathers every lesson's References section.
* ``on_page_content``: formulas in headings read as plain text in the table of contents;
  mermaid diagrams are drawn at their natural size (legible text, scrolling sideways when
  wider than the page) instead of being shrunk to the column; a lesson page is folded into
  its numbered sections under an "In this lesson" box (``pages.fold_sections``).
* ``on_post_build``: the search index holds plain text, not raw TeX (snippets read cleanly).
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import nbformat
from mkdocs.structure.files import File, Files

from grader.build.editions import student_notebook, student_script
from grader.lessons import all_lessons
from grader.settings import publish_settings
from grader.site import assets as site_assets
from grader.site.dist import EDITION_VARIABLE
from grader.site.pages import (
    fold_sections,
    lesson_page,
    placeholder_page,
    plain_math,
    references_section,
    student_files,
    syllabus_page,
)
from grader.site.syllabus import SYLLABUS

log = logging.getLogger("mkdocs.hooks.course")

REFERENCES_MARK = "<!-- lesson references: generated from each lesson's References section -->"


def existing_lessons() -> dict:
    return {lesson.slug: lesson for lesson in all_lessons() if lesson.student.exists()}


AUTHOR_PAGES = ("authoring.md",)  # in the repository and in an instructor build, not in the student site
# mermaid shrinks a diagram to the column by default (labels of 4–10 px); drawn at its natural
# size its text keeps mermaid's 16 px font and the diagram scrolls sideways on a narrow screen.
MERMAID_INIT = '%%{init: {"flowchart": {"useMaxWidth": false}, "sequence": {"useMaxWidth": false}}}%%'
MERMAID_BLOCK = re.compile(r'(<pre class="mermaid"><code>)(?!%%\{init)')
MERMAID_SOURCE = re.compile(r"<pre><code>%%\{init.*?</code></pre>", re.S)  # a diagram's source: no snippet
LESSON_PAGE = re.compile(r"lessons/\d\d_\w+\.md")
LOOPBACK_LINK = re.compile(r'<a [^>]*href="https?://(?:127\.0\.0\.1|localhost)[^"]*"[^>]*>(.*?)</a>', re.S)


def student_build() -> bool:
    """The published (student) site unless ``COURSE_SITE_EDITION=instructor`` asks for the instructor's view."""
    return os.environ.get(EDITION_VARIABLE, "student") != "instructor"


def _drop_from_nav(nav, pages: tuple[str, ...]):
    if isinstance(nav, list):
        kept = [_drop_from_nav(item, pages) for item in nav]
        return [item for item in kept if item not in (None, {}, [])]
    if isinstance(nav, dict):
        return {key: value for key, value in ((k, _drop_from_nav(v, pages)) for k, v in nav.items())
                if value not in (None, {}, [])}
    return None if nav in pages else nav


def on_config(config):
    settings = publish_settings()
    if not config.get("site_url"):  # `mkdocs serve` sets its own (127.0.0.1:8000) before this runs
        # The published address: canonical links, the sitemap, a 404 page that works at any depth.
        config["site_url"] = settings.pages_url
    config["repo_url"] = settings.github_url
    config["repo_name"] = settings.repository
    if student_build():  # the source repository may be private: no page links into it
        config["edit_uri"] = ""
        theme = config.get("theme")
        if theme is not None:
            theme["features"] = [f for f in theme["features"] if f != "content.action.edit"]
        if config.get("nav"):
            config["nav"] = _drop_from_nav(config["nav"], AUTHOR_PAGES)
    else:
        config["edit_uri"] = f"edit/{settings.branch}/site/"
    config["remote_branch"] = settings.pages_branch  # where `mkdocs gh-deploy` publishes (Colab opens it)
    scripts = {package.site_script: package for package in site_assets.PACKAGES}
    absent = site_assets.missing()
    for n, script in enumerate(config["extra_javascript"]):
        package = scripts.get(str(script))
        if package is not None and package in absent:
            config["extra_javascript"][n] = package.cdn
    if absent:
        log.info("MathJax/mermaid are not fetched, so this build loads them from a CDN "
                 "(run `make assets` for a site that works offline)")
    return config


def on_files(files: Files, config) -> Files:
    settings = publish_settings()
    if student_build():
        for name in AUTHOR_PAGES:
            page = files.get_file_from_path(name)
            if page is not None:
                files.remove(page)
    existing = existing_lessons()
    syllabus = File.generated(config, "syllabus.md", content=syllabus_page(existing))
    instructor = not student_build()
    if instructor:
        syllabus.edit_uri = "../grader/site/syllabus.py"
    files.append(syllabus)
    for planned in SYLLABUS:
        lesson = existing.get(planned.slug)
        if lesson is None:
            placeholder = File.generated(config, f"lessons/{planned.slug}.md", content=placeholder_page(planned))
            if instructor:
                placeholder.edit_uri = "../grader/site/syllabus.py"
            files.append(placeholder)
            continue
        page = lesson_page(lesson, settings)
        generated = File.generated(config, f"lessons/{lesson.slug}.md", content=page.markdown)
        if instructor:
            generated.edit_uri = f"../solutions/{lesson.slug}.py"  # edit the source, not the generated page
        files.append(generated)
        for path, png in page.figures.items():
            files.append(File.generated(config, path, content=png))
        notebook = nbformat.writes(student_notebook(lesson, settings))
        files.append(File.generated(config, f"notebooks/{lesson.slug}.ipynb", content=notebook))
    for site_path, source in student_files().items():
        if source.stem in existing:  # the .py edition, its bootstrap installing from this publication
            files.append(File.generated(config, site_path, content=student_script(existing[source.stem], settings)))
    for site_path, source in site_assets.site_files().items():
        files.append(File.generated(config, site_path, abs_src_path=str(source)))
    return files


def on_page_markdown(markdown: str, page, config, files):
    if REFERENCES_MARK in markdown:
        markdown = markdown.replace(REFERENCES_MARK, references_section(existing_lessons()))
    return markdown


def on_page_content(html: str, page, config, files):
    """The table of contents shows heading text, where MathJax does not run: drop the TeX.

    Links to this machine (``http://127.0.0.1:8000``) mean something only on the reader's own
    machine: they are shown as code, not as links a reader would follow from the public site.
    """
    html = LOOPBACK_LINK.sub(lambda m: f"<code>{m[1]}</code>", html)
    html = MERMAID_BLOCK.sub(lambda m: m[1] + MERMAID_INIT + "\n", html)
    if LESSON_PAGE.fullmatch(page.file.src_uri) and page.file.name in existing_lessons():
        html = fold_sections(html)  # a written lesson (not a "coming soon" page): folded sections

    def clean(items):
        for item in items:
            item.title = plain_math(item.title)
            clean(item.children)

    clean(page.toc)
    return html


def on_post_build(config):
    """Search snippets are plain text: ``\\(k\\)`` and display formulas become readable text."""
    index = Path(config["site_dir"]) / "search" / "search_index.json"
    if not index.exists():
        return
    data = json.loads(index.read_text(encoding="utf-8"))
    for doc in data.get("docs", []):
        for key in ("title", "text"):
            if key in doc:
                doc[key] = plain_math(MERMAID_SOURCE.sub("", doc[key]))
    index.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
