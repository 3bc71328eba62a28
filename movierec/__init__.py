"""movierec: the building blocks that the course's lessons share.

Most modules in this package are generated: ``python -m grader build`` copies every
cell tagged ``export`` in ``solutions/NN_name.py`` into ``movierec/name.py`` (the d2l
``#@save`` idea), so a later lesson imports the reference version of an earlier
lesson's building blocks instead of depending on the student's own answers.
Exercise (solution) cells are never exported, so this package holds no answers.

The hand-written modules are :mod:`movierec.setup` (environment and seeds) and
:mod:`movierec.report` (metrics that ``make course`` collects).
"""

__version__ = "0.1.0"
