# DO NOT EDIT — generated from solutions/07_tf_serving.py by `python -m grader build`: edit the lesson instead.
"""Building blocks from lesson 07_tf_serving: Lesson 07 — TensorFlow Serving.

The cells of solutions/07_tf_serving.py tagged ``export`` whose first line
is ``#| export serving.export``, in lesson order; each block
names the section of the lesson that explains it.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from movierec.serving.features import (
    FeatureLookup,
    distinct_titles,
    encoder_rows,
    movie_feature_table,
    row_table,
    user_feature_table,
)
from movierec.serving.modelbase import check_unclipped, next_version, save_servable


# --- from solutions/07_tf_serving.py, section: 2. The models we will serve
def train_models(train: tf.data.Dataset | dict, movies: tf.data.Dataset | dict, *, quick: bool,
                 seed: int = 42) -> tuple:
    """Train the lesson 04 retrieval model and the lesson 05 ranking model for serving.

    Returns ``(retrieval_model, ranking_model)``: 3 epochs of retrieval, and a ranker
    whose epoch count early stopping chooses (lesson 05's best model, about half a
    minute of training), or 1 epoch of each with ``quick=True`` (tests, smoke runs).
    Both models take dicts of raw features.
    """
    from movierec.preprocessing import read_features
    from movierec.ranking import train_ranking_model
    from movierec.retrieval import train_retrieval_model

    # Columns (a ``read_features`` dict) are used as they are; a dataset is read once for both models.
    train_columns, movie_columns = (data if isinstance(data, dict) else read_features(data) for data in (train, movies))
    retrieval_epochs, ranking_epochs = (1, 1) if quick else (3, None)  # None: early stopping
    retrieval_model = train_retrieval_model(train_columns, movie_columns, features=True, epochs=retrieval_epochs,
                                            seed=seed)
    ranking_model = train_ranking_model(train_columns, movie_columns, epochs=ranking_epochs, seed=seed)
    return retrieval_model, ranking_model


# --- from solutions/07_tf_serving.py, section: 6. Three servables with explicit signatures
SERVED_MODELS = ("query_tower", "ranker", "retrieval")
N_CANDIDATES = 100

# The documented contract of every exported model: name -> (dtype, shape); None is any size.
_USER, _KNOWN = {"user_id": ("string", (None,))}, {"known_user": ("bool", (None,))}
SIGNATURES = {
    "query_tower": {"inputs": _USER, "outputs": {"embedding": ("float32", (None, None)), **_KNOWN}},
    "ranker": {"inputs": {**_USER, "movie_title": ("string", (None,))}, "outputs": {"score": ("float32", (None,))}},
    "retrieval": {"inputs": _USER, "outputs": {
        "titles": ("string", (None, N_CANDIDATES)), "scores": ("float32", (None, N_CANDIDATES)), **_KNOWN,
    }},
}


def _strings(name: str) -> tf.TensorSpec:
    return tf.TensorSpec([None], tf.string, name=name)


class QueryTowerServable(tf.Module):
    """``serving_default(user_id) -> {embedding, known_user}``: the query tower behind lookups."""

    def __init__(self, query_tower: tf.keras.Model, lookup: FeatureLookup) -> None:
        super().__init__(name="query_tower_servable")
        self.query_tower = query_tower
        self.lookup = lookup

    @tf.function(input_signature=[_strings("user_id")])
    def serve(self, user_id: tf.Tensor) -> dict[str, tf.Tensor]:
        features, known = self.lookup.user_features(user_id)
        return {"embedding": tf.cast(self.query_tower(features), tf.float32), "known_user": known}


def unclipped_rating(ranker: tf.keras.Model, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
    """Lesson 05's ``MovieRanker`` at inference without its clip to 1–5 stars (the score to sort by)."""
    return ranker(features, training=False, clip=False)


class RankerServable(tf.Module):
    """``serving_default(user_id, movie_title) -> {score}``: one raw (unclipped) predicted rating per pair."""

    def __init__(self, ranker: tf.keras.Model, lookup: FeatureLookup) -> None:
        super().__init__(name="ranker_servable")
        self.ranker, self.lookup = ranker, lookup
        rows = encoder_rows(ranker, lookup)
        self.user_rows, self.title_rows = tf.constant(rows["user_rows"]), tf.constant(rows["title_rows"])
        self.order = tf.constant(rows["order"])  # back to the encoder's column order
        self.user_row, self.title_row = row_table(rows["users"]), row_table(rows["titles"])

    @tf.function(input_signature=[_strings("user_id"), _strings("movie_title")])
    def serve(self, user_id: tf.Tensor, movie_title: tf.Tensor) -> dict[str, tf.Tensor]:
        user = tf.gather(self.user_rows, self.user_row.lookup(user_id))  # last column: the bias
        title = tf.gather(self.title_rows, self.title_row.lookup(movie_title))
        x0 = tf.gather(tf.concat([user[:, :-1], title[:, :-1]], axis=1), self.order, axis=1)
        rating = self.ranker.mean_rating + self.ranker.interaction(x0, training=False) + user[:, -1] + title[:, -1]
        return {"score": tf.reshape(tf.cast(rating, tf.float32), [-1])}


class RetrievalServable(tf.Module):
    """``serving_default(user_id) -> {titles, scores, known_user}``: exact top-k over all movies."""

    def __init__(self, query_tower: tf.keras.Model, lookup: FeatureLookup, titles: Sequence[bytes],
                 vectors: np.ndarray, k: int = N_CANDIDATES) -> None:
        super().__init__(name="retrieval_servable")
        self.query_tower = query_tower
        self.lookup = lookup
        titles, vectors = distinct_titles(titles, vectors)  # a title returned twice is one movie too few
        self.index = tfrs.layers.factorized_top_k.BruteForce(k=k)
        self.index.index(candidates=tf.constant(vectors, tf.float32), identifiers=tf.constant(titles, tf.string))

    @tf.function(input_signature=[_strings("user_id")])
    def serve(self, user_id: tf.Tensor) -> dict[str, tf.Tensor]:
        features, known = self.lookup.user_features(user_id)
        scores, titles = self.index(tf.cast(self.query_tower(features), tf.float32))
        return {"titles": titles, "scores": scores, "known_user": known}


# --- from solutions/07_tf_serving.py, section: 8. TF Serving's model layout, versions and config
DOCKER_MODEL_BASE = "/models"
VERSIONS_KEPT = {"query_tower": 2, "ranker": 1, "retrieval": 1}
CONFIG_FILES = {"models.config": None, "models.docker.config": DOCKER_MODEL_BASE}  # None: this machine's paths


def model_config_text(base_path: str, names: Sequence[str] = SERVED_MODELS) -> str:
    """A TF Serving ``model_config_list`` serving ``names`` from ``<base_path>/<name>``."""
    entries = [
        f'  config {{\n    name: "{name}"\n    base_path: "{base_path.rstrip("/")}/{name}"\n'
        f'    model_platform: "tensorflow"\n'
        f"    model_version_policy {{ latest {{ num_versions: {VERSIONS_KEPT.get(name, 1)} }} }}\n  }}\n"
        for name in names
    ]
    return "model_config_list {\n" + "".join(entries) + "}\n"


def warmup_examples(model_name: str, user_ids: Sequence[str], titles: Sequence[str]) -> list[dict[str, list[str]]]:
    """Realistic warm-up requests for one of our models: one user, a few users, and a ranker-sized batch."""
    users, first = [str(u) for u in user_ids], str(user_ids[0])
    if model_name == "ranker":
        batch = [str(t) for t in titles[:N_CANDIDATES]]
        return [{"user_id": [first], "movie_title": batch[:1]}, {"user_id": [first] * len(batch), "movie_title": batch}]
    return [{"user_id": [first]}, {"user_id": [*users[:4], "unknown-user"]}]


def export_servables(base: str | Path, *, retrieval_model: tf.keras.Model, ranking_model: tf.keras.Model,
                     train: tf.data.Dataset | dict, movies: tf.data.Dataset,
                     version: int | None = None) -> dict[str, Any]:
    """Save a new version of the three servables, with warm-up files, and write both config files.

    Writes ``<base>/{query_tower,ranker,retrieval}/<v>/`` where ``v`` is ``version`` or
    :func:`next_version`, ``<base>/models.config`` (this machine's absolute paths) and
    ``<base>/models.docker.config`` (paths under ``/models``). Returns the version, the
    servables (still in memory) and the catalogue: ``titles`` and ``vectors``, one row per title.
    """
    from movierec.retrieval import candidate_embeddings

    base = Path(base)
    version = version or next_version(base)
    users = user_feature_table(train)
    lookup = FeatureLookup(users, movie_feature_table(movies))
    titles, vectors = distinct_titles(*candidate_embeddings(retrieval_model, movies))
    servables = {
        "query_tower": QueryTowerServable(retrieval_model.query_tower, lookup),
        "ranker": RankerServable(ranking_model, lookup),
        "retrieval": RetrievalServable(retrieval_model.query_tower, lookup, titles, vectors),
    }
    check_unclipped(servables["ranker"], users["user_id"][:50].tolist(), titles[:50].tolist())
    user_ids, title_list = [u.decode() for u in users["user_id"][:5]], [t.decode() for t in titles]
    for name, servable in servables.items():
        save_servable(servable, base / name / str(version), warmup=warmup_examples(name, user_ids, title_list))
    for file_name, docker_base in CONFIG_FILES.items():
        text = model_config_text(docker_base or str(base.resolve()))
        (base / file_name).write_text(text, encoding="utf-8")
    return dict(base=base, version=version, servables=servables, titles=titles, vectors=vectors, users=users)
