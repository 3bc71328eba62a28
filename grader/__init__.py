"""grader: the course's build, feedback and autograding glue around nbgrader and jupytext.

Run it as ``python -m grader {build,check,autograde,course}``. Each sub-command lives in
its own module, named after what it does:

- :mod:`grader.lessons`   — finding lessons and reading their sources
- :mod:`grader.editions`  — the student edition and notebooks, made by nbgrader's preprocessors
- :mod:`grader.library`   — exporting ``export``-tagged cells into the ``movierec`` package
- :mod:`grader.bootstrap` — the Colab set-up code put in front of every lesson's setup cell
- :mod:`grader.build`     — writing (or checking) every generated file
- :mod:`grader.execute`   — running a notebook and collecting each cell's outcome
- :mod:`grader.check`     — a student's immediate feedback, without Jupyter
- :mod:`grader.autograde` — nbgrader's ``generate_assignment`` + ``autograde`` → ``grades.csv``
- :mod:`grader.course`    — ``make course``: build, run and grade everything, write the report
"""
