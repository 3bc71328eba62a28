# DO NOT EDIT — generated from solutions/08_service.py by `python -m grader build`: edit the lesson instead.
"""Building blocks from lesson 08_service: Lesson 08 — The recommendation service.

The cells of solutions/08_service.py tagged ``export`` whose first line
is ``#| export serving.index``, in lesson order; each block
names the section of the lesson that explains it.
"""

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from movierec.annoy import MovieIndex
from movierec.serving.export import N_CANDIDATES, export_servables
from movierec.serving.tuning import TARGET_RECALL, TUNING_USERS, annoy_titles, recall_against, tune_search_k

# --- from solutions/08_service.py, section: 2. The models and the index
ANNOY_DIR = "annoy"
ANNOY_FILE = "movies.ann"
HISTORY_FILE = "history.json"  # beside the index: who rated what in training, and the popularity fallback
TUNING_FILE = "tuning.json"  # beside the index: its n_trees, tuned search_k and measured recall@100
ANNOY_TREES = 10  # lesson 06, section 9


def rating_history(train: tf.data.Dataset | dict) -> dict[str, Any]:
    """What the API needs to know about the training ratings, as plain JSON.

    ``{"seen": {user_id: [title, ...]}, "popular": [[title, n_ratings], ...]}``: every
    title each training user rated, and every rated title by its number of ratings (most
    rated first, ties by title), the cold-start fallback for users the models never saw.
    """
    from movierec.serving.features import rating_columns

    columns = rating_columns(train, ("user_id", "movie_title"))
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


def export_models(base: str | Path, *, retrieval_model: tf.keras.Model, ranking_model: tf.keras.Model,
                  train: tf.data.Dataset | dict, movies: tf.data.Dataset, n_trees: int = ANNOY_TREES,
                  seed: int = 42) -> dict:
    """Export a new version of the servables (lesson 07, :func:`export_servables`) and, beside them, the index.

    ``<base>/annoy/<v>/`` holds the Annoy index, its tuning (``search_k`` tuned against the
    exact ``retrieval`` servable; recall@100 over all training users is returned as
    ``annoy_recall_at_100``) and the rating history. It is written last, atomically: the
    service switches to version ``v`` only once its index exists, so the towers are complete.
    """
    exported = export_servables(base, retrieval_model=retrieval_model, ranking_model=ranking_model, train=train,
                                movies=movies)
    base, version, servables = Path(base), exported["version"], exported["servables"]
    titles, vectors = exported["titles"], exported["vectors"]
    user_ids = tf.constant(exported["users"]["user_id"])
    index = MovieIndex.build(vectors, titles, metric="dot", n_trees=n_trees, seed=seed)
    queries = servables["query_tower"].serve(user_ids)["embedding"].numpy()
    exact = [[t.decode() for t in row] for row in servables["retrieval"].serve(user_ids)["titles"].numpy()]
    sample = np.random.default_rng(seed).permutation(len(exact))[:TUNING_USERS]
    search_k, tuning_recall = tune_search_k(index, queries[sample], [exact[i] for i in sample])
    recall = recall_against(annoy_titles(index, queries, N_CANDIDATES, search_k), exact)
    tuning = {"n_trees": n_trees, "search_k": search_k, "target_recall": TARGET_RECALL, "tuning_users": len(sample),
              "tuning_recall_at_100": round(tuning_recall, 4), "recall_at_100": round(recall, 4), "users": len(exact)}
    index_dir = base / ANNOY_DIR / str(version)
    staging = base / ANNOY_DIR / f".{version}.partial-{os.getpid()}"
    index.save(staging / ANNOY_FILE)
    (staging / TUNING_FILE).write_text(json.dumps(tuning, indent=1), encoding="utf-8")
    (staging / HISTORY_FILE).write_text(json.dumps(rating_history(train)), encoding="utf-8")
    os.replace(staging, index_dir)
    return {"base": base, "version": version, "embedding_dim": int(vectors.shape[1]), "catalogue_rows": len(titles),
            "search_k": search_k, "annoy_recall_at_100": recall}
