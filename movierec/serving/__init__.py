"""The serving half of the course library: lessons 07 and 08.

Generated from export cells that name their module (``#| export serving.<module>``):

* :mod:`movierec.serving.export` — servables with explicit signatures, in-graph feature
  lookups, the TF Serving model layout, config files and warm-up records, the Annoy index
  tuned against exact retrieval (lesson 07);
* :mod:`movierec.serving.clients` — TF Serving's REST and gRPC clients and their errors
  (lesson 07);
* :mod:`movierec.serving.service` — the recommendation service: backends, the two-stage
  recommender with its seen filter and popularity fallback, the FastAPI app (lesson 08).

Hand-written infrastructure that lessons import but students need not write:

* :mod:`movierec.serving.launch` — free ports, ``tensorflow_model_server`` and the API as
  child processes;
* :mod:`movierec.serving.loadgen` — the closed-loop load generator and latency summary.

This file only documents the package; it re-exports nothing, so every import names the
module a building block comes from.
"""
