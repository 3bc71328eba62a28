"""The course site (mkdocs-material): pages generated at build time from the student editions.

- :mod:`grader.site.hooks`    — the MkDocs hooks named in ``mkdocs.yml``
- :mod:`grader.site.pages`    — lesson, placeholder, syllabus and reference pages
- :mod:`grader.site.assets`   — MathJax and mermaid from npm, pinned and integrity-checked
- :mod:`grader.site.syllabus` — the planned lessons, their times and quality bars
"""
