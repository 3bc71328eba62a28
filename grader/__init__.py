"""grader: the course's build, grading, sandbox and site, around nbgrader, jupytext and MkDocs.

Run it as ``python -m grader {build,check,autograde,autograde-one,merge,course}``. The
folders are its four jobs:

- :mod:`grader.build`   — generating student editions, notebooks and library modules from ``solutions/``
- :mod:`grader.grading` — one grading engine (nbgrader) for ``check``, ``course`` and ``autograde``
- :mod:`grader.sandbox` — isolating and guarding each grading kernel
- :mod:`grader.site`    — the course site's MkDocs hooks, pages and assets

At the root, what all four share: :mod:`grader.lessons` (finding and reading lessons),
:mod:`grader.markers` (the nbgrader markers and generated-file headers) and
:mod:`grader.settings` (the publishing settings in ``mkdocs.yml``).
"""
