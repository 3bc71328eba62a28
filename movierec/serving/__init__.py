"""The serving half of the course library: lessons 07 and 08.

Generated from export cells that name their module (``#| export serving.<module>``):

* :mod:`movierec.serving.export` — servables with explicit signatures and their contract,
  the model config files and the export of a new version (lesson 07, ``07_tf_serving``);
* :mod:`movierec.serving.clients` — TF Serving's REST and gRPC request formats and the two
  errors a call can end in (lesson 07);
* :mod:`movierec.serving.index` — the Annoy index tuned against exact retrieval, the rating
  history beside it, and the full export the service loads (lesson 08, ``08_service``);
* :mod:`movierec.serving.service` — the recommendation service: backends, the two-stage
  recommender with its seen filter and popularity fallback, the FastAPI app (lesson 08).

Hand-written infrastructure that lessons import but students need not write:

* :mod:`movierec.serving.launch` — free ports, ``tensorflow_model_server`` and the API as
  child processes;
* :mod:`movierec.serving.loadgen` — the closed-loop load generator and latency summary;
* :mod:`movierec.serving.demo` — the demo page ``GET /`` that ``python -m movierec.api serve``
  adds to the app;
* :mod:`movierec.serving.features` — the in-graph lookup tables from raw ids to features (lesson 07);
* :mod:`movierec.serving.modelbase` — version directories, atomic saves, warm-up files, signature
  inspection, config parsing and the metadata response (lesson 07);
* :mod:`movierec.serving.transport` — the thread-safe REST and gRPC clients with timeouts, and the
  TF Serving backend of the service (lessons 07 and 08);
* :mod:`movierec.serving.tuning` — lesson 06's ``search_k`` rule applied at export (lesson 08).

This file only documents the package; it re-exports nothing, so every import names the
module a building block comes from.
"""
