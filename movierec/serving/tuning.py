"""Lesson 06's tuning rule applied at export: the smallest ``search_k`` whose recall reaches a target.

Hand-written, not generated from a lesson: lesson 06 teaches how ``search_k`` trades recall
for speed and how to choose it; lesson 08's export (``movierec.serving.index.export_models``)
applies that rule to the 100 candidates the service retrieves, against the exact
``retrieval`` servable, and lesson 08 explains it in a paragraph.

* :func:`annoy_titles` — the distinct titles raw Annoy calls return (a shortfall counts against recall);
* :func:`recall_against` — the mean share of each exact top list that a found list holds;
* :func:`tune_search_k` — the first value of :data:`SEARCH_K_GRID` whose recall reaches :data:`TARGET_RECALL`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from movierec.annoy import MovieIndex
from movierec.serving.export import N_CANDIDATES

__all__ = ["SEARCH_K_GRID", "TARGET_RECALL", "TUNING_USERS", "annoy_titles", "recall_against", "tune_search_k"]

# Lesson 06, section 9: the smallest search_k on this grid that reaches recall 0.95.
TARGET_RECALL = 0.95
SEARCH_K_GRID = tuple(sorted({int(round(v)) for v in np.geomspace(10, 20_000, 40)}))
TUNING_USERS = 300  # query embeddings of this many training users tune search_k; recall@100 is reported on all


def annoy_titles(index: MovieIndex, queries: np.ndarray, k: int, search_k: int = -1) -> list[list[str]]:
    """The distinct titles Annoy itself returns among the ``k`` nearest rows of ``index``, for each query.

    Raw Annoy calls, as lesson 06 tunes with: with a small ``search_k`` Annoy may return
    fewer than ``k`` rows, and that shortfall counts against recall (``MovieIndex.search``
    would hide it by widening the search).
    """
    rows = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    found = [index.annoy.get_nns_by_vector(query.tolist(), k, search_k=search_k) for query in rows]
    return [list(dict.fromkeys(str(index.labels[p]) for p in positions)) for positions in found]


def recall_against(found: Sequence[Sequence[str]], exact: Sequence[Sequence[str]]) -> float:
    """Mean share of each exact top list (distinct titles) that ``found`` also holds."""
    shares = [len(set(f) & set(e)) / len(set(e)) for f, e in zip(found, exact, strict=True) if len(e)]
    return float(np.mean(shares))


def tune_search_k(
    index: MovieIndex, queries: np.ndarray, exact: Sequence[Sequence[str]], *, k: int = N_CANDIDATES
) -> tuple[int, float]:
    """Lesson 06's rule for ``k`` candidates: the smallest ``SEARCH_K_GRID`` value whose recall reaches the target.

    Recall grows with ``search_k`` (lesson 06, section 9), so the first grid value that
    reaches ``TARGET_RECALL`` is the smallest. Returns ``(search_k, recall)``; the largest
    grid value if none reaches it.
    """
    for search_k in SEARCH_K_GRID:
        recall = recall_against(annoy_titles(index, queries, k, search_k), exact)
        if recall >= TARGET_RECALL:
            break
    return search_k, recall

