"""movierec: the building blocks that the course's lessons share.

Most modules in this package are generated: ``python -m grader build`` copies every
cell tagged ``export`` in ``solutions/NN_name.py`` into ``movierec/name.py`` (the d2l
``#@save`` idea), so a later lesson imports the reference version of an earlier
lesson's building blocks instead of depending on the student's own answers.
Exercise (solution) cells are never exported. That alone does not keep answers out of
the package: an exported building block can still do what an exercise asks, so an
exercise must ask for something the library does not provide (see site/authoring.md).

An export cell may name another target module (``#| export serving.clients`` as its first
line), so one lesson can fill several modules of a subpackage: lesson 07 fills
:mod:`movierec.serving.export` and :mod:`movierec.serving.clients`, lesson 08
:mod:`movierec.serving.index` and :mod:`movierec.serving.service`.

The hand-written modules are :mod:`movierec.setup` (environment and seeds),
:mod:`movierec.report` (metrics that ``make course`` collects), :mod:`movierec.checks`
(the plain-data comparisons test cells use), :mod:`movierec.api` (the command line that
exports and serves the models), :mod:`movierec.balancer` (spreading the API's connections over
its processes), and the serving infrastructure
:mod:`movierec.serving.launch` (server processes and ports), :mod:`movierec.serving.loadgen`
(the load generator), :mod:`movierec.serving.demo` (the demo page), :mod:`movierec.serving.features`
(in-graph feature tables), :mod:`movierec.serving.modelbase` (the model base on disk),
:mod:`movierec.serving.transport` (TF Serving clients and backend) and
:mod:`movierec.serving.tuning` (the ``search_k`` rule); every other module
starts with a ``DO NOT EDIT`` line naming the lesson it is generated from.
"""

__version__ = "0.1.0"
