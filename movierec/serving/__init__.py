"""The serving half of the course library: lessons 07 and 08.

Generated from export cells that name their module (``#| export serving.<module>``):

* :mod:`movierec.serving.export` — servables with explicit signatures, in-graph feature
  lookups, the TF Serving model layout, config files, labels, warm-up records and the
  metadata response (lesson 07, ``07_tf_serving``);
* :mod:`movierec.serving.clients` — TF Serving's REST and gRPC clients and their errors
  (lesson 07);
* :mod:`movierec.serving.index` — the Annoy index tuned against exact retrieval, the rating
  history beside it, and the full export the service loads (lesson 08, ``08_service``);
* :mod:`movierec.serving.service` — the recommendation service: backends, the two-stage
  recommender with its seen filter and popularity fallback, the FastAPI app (lesson 08).

Hand-written infrastructure that lessons import but students need not write:

* :mod:`movierec.serving.launch` — free ports, ``tensorflow_model_server`` and the API as
  child processes;
* :mod:`movierec.serving.loadgen` — the closed-loop load generator and latency summary;
* :mod:`movierec.serving.demo` — the demo page ``GET /`` that ``python -m movierec.api serve``
  adds to the app.

This file only documents the package; it re-exports nothing, so every import names the
module a building block comes from.
"""
