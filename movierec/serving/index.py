# DO NOT EDIT — generated from solutions/08_service.py by `python -m grader build`: edit the lesson instead.
"""Building blocks from lesson 08_service: Lesson 08 — The recommendation service.

The cells of solutions/08_service.py tagged ``export`` whose first line
is ``#| export serving.index``, in lesson order; each block
names the section of the lesson that explains it.
"""

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from movierec.annoy import MovieIndex
from movierec.serving.export import N_CANDIDATES, export_servables

# --- from solutions/08_service.py, section: 2. The models and the index
ANNOY_DIR = "annoy"
ANNOY_FILE = "movies.ann"
HISTORY_FILE = "history.json"  # beside the index: who rated what in training, and the popularity fallback
TUNING_FILE = "tuning.json"  # beside the index: its n_trees, tuned search_k and measured recall@100
# Lesson 06, section 9: 10 trees, and the smallest search_k on this grid that reaches recall 0.95.
ANNOY_TREES = 10
TARGET_RECALL = 0.95
SEARCH_K_GRID = tuple(sorted({int(round(v)) for v in np.geomspace(10, 20_000, 40)}))
TUNING_USERS = 300  # query embeddings of this many training users tune search_k; recall@100 is reported on all


def rating_history(train: tf.data.Dataset) -> dict[str, Any]:
    """What the API needs to know about the training ratings, as plain JSON.

    ``{"seen": {user_id: [title, ...]}, "popular": [[title, n_ratings], ...]}``: every
    title each training user rated, and every rated title by its number of ratings (most
    rated first, ties by title), the cold-start fallback for users the models never saw.
    """
    from movierec.dataset import to_numpy

    columns = to_numpy(train, ("user_id", "movie_title"))
    users = [u.decode() for u in columns["user_id"]]
    titles = [t.decode() for t in columns["movie_title"]]
    seen: dict[str, set[str]] = {}
    counts: dict[str, int] = {}
    for user, title in zip(users, titles):
        seen.setdefault(user, set()).add(title)
        counts[title] = counts.get(title, 0) + 1
    popular = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    seen_lists = {user: sorted(rated) for user, rated in sorted(seen.items())}
    return {"seen": seen_lists, "popular": [list(pair) for pair in popular]}


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


def export_models(
    base: str | Path,
    *,
    retrieval_model: tf.keras.Model,
    ranking_model: tf.keras.Model,
    train: tf.data.Dataset,
    movies: tf.data.Dataset,
    n_trees: int = ANNOY_TREES,
    seed: int = 42,
) -> dict:
    """Export a new version of the three servables (lesson 07) and the Annoy index under ``base``.

    Writes the servables and config files with :func:`export_servables`, then
    ``<base>/annoy/<v>/`` (the index over one row per title, its sidecar, the tuning and
    the rating history). ``search_k`` is tuned on the query embeddings of training users
    against the exact ``retrieval`` servable, and the index's recall@100 against that
    servable over all training users is returned as ``annoy_recall_at_100``. The index is
    written last: the service only switches to version ``v`` once its index exists, and
    by then the towers of ``v`` are complete.
    """
    exported = export_servables(
        base, retrieval_model=retrieval_model, ranking_model=ranking_model, train=train, movies=movies
    )
    base, version, servables = Path(base), exported["version"], exported["servables"]
    titles, vectors = exported["titles"], exported["vectors"]
    user_ids = tf.constant(exported["users"]["user_id"])
    index = MovieIndex.build(vectors, titles, metric="dot", n_trees=n_trees, seed=seed)
    queries = servables["query_tower"].serve(user_ids)["embedding"].numpy()
    exact = [[t.decode() for t in row] for row in servables["retrieval"].serve(user_ids)["titles"].numpy()]
    sample = np.random.default_rng(seed).permutation(len(exact))[:TUNING_USERS]
    search_k, tuning_recall = tune_search_k(index, queries[sample], [exact[i] for i in sample])
    recall = recall_against(annoy_titles(index, queries, N_CANDIDATES, search_k), exact)
    tuning = {
        "n_trees": n_trees,
        "search_k": search_k,
        "target_recall": TARGET_RECALL,
        "tuning_users": len(sample),
        "tuning_recall_at_100": round(tuning_recall, 4),
        "recall_at_100": round(recall, 4),
        "users": len(exact),
    }
    index_dir = base / ANNOY_DIR / str(version)
    staging = base / ANNOY_DIR / f".{version}.partial-{os.getpid()}"
    index.save(staging / ANNOY_FILE)
    (staging / TUNING_FILE).write_text(json.dumps(tuning, indent=1), encoding="utf-8")
    (staging / HISTORY_FILE).write_text(json.dumps(rating_history(train)), encoding="utf-8")
    os.replace(staging, index_dir)
    return {
        "base": base,
        "version": version,
        "embedding_dim": int(vectors.shape[1]),
        "catalogue_rows": len(titles),
        "search_k": search_k,
        "annoy_recall_at_100": recall,
    }


def export_course_models(base: str | Path, *, quick: bool, seed: int = 42) -> dict:
    """Train both models on the course split (lesson 02) and export them under ``base``."""
    from movierec.dataset import load_movies, load_ratings, random_split
    from movierec.serving.export import train_models

    movies = load_movies()
    train, validation, _ = random_split(load_ratings(), seed=seed)
    train = train.concatenate(validation)
    retrieval_model, ranking_model = train_models(train, movies, quick=quick, seed=seed)
    return export_models(
        base, retrieval_model=retrieval_model, ranking_model=ranking_model, train=train, movies=movies, seed=seed
    )
