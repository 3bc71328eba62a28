"""MkDocs hooks (see ``hooks:`` in mkdocs.yml): generate the lesson pages at build time.

Nothing generated here is written into ``site/``: lesson pages, the syllabus, figures
and downloadable notebooks exist only in the build, so they can never go stale.
"""

from __future__ import annotations

import nbformat
from mkdocs.structure.files import File, Files

from grader.editions import student_notebook
from grader.lessons import all_lessons
from grader.settings import load_settings
from grader.site_pages import lesson_page, placeholder_page, student_files, syllabus_page
from grader.syllabus import SYLLABUS


def on_config(config):
    settings = load_settings()
    config["repo_url"] = settings.github_url
    config["edit_uri"] = f"edit/{settings.branch}/site/"
    return config


def on_files(files: Files, config) -> Files:
    settings = load_settings()
    existing = {lesson.slug: lesson for lesson in all_lessons() if lesson.student.exists()}
    files.append(File.generated(config, "syllabus.md", content=syllabus_page(existing)))
    for planned in SYLLABUS:
        lesson = existing.get(planned.slug)
        if lesson is None:
            files.append(File.generated(config, f"lessons/{planned.slug}.md", content=placeholder_page(planned)))
            continue
        page = lesson_page(lesson, settings)
        generated = File.generated(config, f"lessons/{lesson.slug}.md", content=page.markdown)
        generated.edit_uri = f"../solutions/{lesson.slug}.py"  # edit the source, not the generated page
        files.append(generated)
        for path, png in page.figures.items():
            files.append(File.generated(config, path, content=png))
        notebook = nbformat.writes(student_notebook(lesson, settings))
        files.append(File.generated(config, f"notebooks/{lesson.slug}.ipynb", content=notebook))
    for site_path, source in student_files().items():
        files.append(File.generated(config, site_path, content=source.read_bytes()))
    return files
