"""The build: every file generated from the one hand-written source of each lesson.

- :mod:`grader.build.editions`  — the student edition and notebooks, made by nbgrader's own preprocessors
- :mod:`grader.build.library`   — ``export`` cells → the generated ``movierec`` modules
- :mod:`grader.build.bootstrap` — the Colab set-up code put in front of every lesson's setup cell
- :mod:`grader.build.generate`  — ``python -m grader build [--check]``: write (or check) every generated file
"""
