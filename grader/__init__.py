"""grader: the course's build, feedback and autograding glue around nbgrader and jupytext.

Run it as ``python -m grader {build,check,autograde,autograde-one,merge,course}``. Each sub-command lives in
its own module, named after what it does:

- :mod:`grader.lessons`   — finding lessons and reading their sources
- :mod:`grader.editions`  — the student edition and notebooks, made by nbgrader's preprocessors
- :mod:`grader.library`   — exporting ``export``-tagged cells into the ``movierec`` package
- :mod:`grader.bootstrap` — the Colab set-up code put in front of every lesson's setup cell
- :mod:`grader.build`     — writing (or checking) every generated file
- :mod:`grader.execute`   — running a notebook and collecting each cell's outcome
- :mod:`grader.check`     — a student's immediate feedback, without Jupyter
- :mod:`grader.autograde` — ``autograde`` / ``autograde-one``: a whole class, graded with nbgrader → ``grades.csv``
- :mod:`grader.collect`   — which file is which student's which lesson; the roster
- :mod:`grader.release`   — ``generate_assignment`` once per lesson: the gradebook every job copies
- :mod:`grader.integrity` — reading a submission; edited, deleted or moved test cells put back
- :mod:`grader.workers`   — the worker pool: one job at a time per worker, own gradebook, timeouts
- :mod:`grader.sandbox`   — namespaces, unprivileged uid and limits around each grading kernel
- :mod:`grader.course_data` — the datasets kernels read, fetched by the grader (kernels are offline)
- :mod:`grader.kernel_guard` — inside the kernel: seeds, and undoing tampering before each test
- :mod:`grader.preprocessors` — nbgrader plug-ins: time budgets, output caps, scrubbed feedback
- :mod:`grader.results`   — ``merge``: per-job results → ``grades.csv``, feedback folder, summary
- :mod:`grader.course`    — ``make course``: build, run and grade everything, write the report
"""
