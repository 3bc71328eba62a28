"""Grading: one engine that runs a lesson and scores it with nbgrader, for every caller.

``python -m grader check`` (a student's feedback), ``python -m grader course`` (the
reference and stub runs of ``make course``) and ``python -m grader autograde`` /
``autograde-one`` (a class) all grade through :func:`grader.grading.pool.run_jobs`: a
worker runs nbgrader's ``Autograde`` on one (student, lesson) job and scores it with
nbgrader's ``determine_grade``. They differ only in their settings
(:class:`~grader.grading.config.GradingConfig`: sandbox on or off, time limits,
environment) and in which release the job is graded against (the instructor's, with
hidden tests, or the student edition's).

- :mod:`.config`        — the settings that decide a grade (and so its resume key)
- :mod:`.results`       — :class:`~.results.Result` (owns ``result.json``), the result store, ``grades.csv``
- :mod:`.release`       — ``generate_assignment`` once per lesson and edition: the gradebook every job copies
- :mod:`.integrity`     — reading a submission; locked test cells checked and put back
- :mod:`.preprocessors` — nbgrader plug-ins: time budgets, output caps, the guard, clean feedback
- :mod:`.job`           — one nbgrader job in one worker's private course folder
- :mod:`.pool`          — worker processes, the job queue, timeouts, the progress bar
- :mod:`.collect`       — which file is which student's which lesson; the roster
- :mod:`.course_data`   — the datasets kernels read, fetched by the grader (kernels are offline)
- :mod:`.autograde`     — ``autograde`` / ``autograde-one``: a class → ``grades.csv`` and feedback
- :mod:`.check`         — ``check``: a student's immediate feedback
- :mod:`.course`        — ``course``: ``make course``'s reference runs, incremental, and the report
- :mod:`.quality_bars`  — the quality bars ``make course`` checks
"""
