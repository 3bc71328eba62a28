# DO NOT EDIT — generated from solutions/07_serving.py by `python -m grader build`: edit the lesson instead.
"""Building blocks from lesson 07_serving: Lesson 07 — Serving with TensorFlow Serving.

The cells tagged ``export`` in solutions/07_serving.py, in lesson order; each block
names the section of the lesson that explains it.
"""

import contextlib
import hashlib
import http.client
import itertools
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import grpc
import numpy as np
import requests
import tensorflow as tf
import tensorflow_recommenders as tfrs
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from movierec.annoy import MovieIndex
from movierec.dataset import to_numpy


# --- from solutions/07_serving.py, section: 2. The models we will serve
def train_models(train: tf.data.Dataset, movies: tf.data.Dataset, *, quick: bool, seed: int = 42) -> tuple:
    """Train the lesson 04 retrieval model and the lesson 05 ranking model for serving.

    Returns ``(retrieval_model, ranking_model)``: 3 epochs of retrieval, and a ranker
    whose epoch count early stopping chooses (lesson 05's best model, about half a
    minute of training), or 1 epoch of each with ``quick=True`` (tests, smoke runs).
    Both models take dicts of raw features.
    """
    from movierec.preprocessing import read_features
    from movierec.ranking import train_ranking_model
    from movierec.retrieval import train_retrieval_model

    train_columns, movie_columns = read_features(train), read_features(movies)  # read the data once for both
    retrieval_epochs, ranking_epochs = (1, 1) if quick else (3, None)  # None: early stopping
    retrieval_model = train_retrieval_model(
        train_columns, movie_columns, features=True, epochs=retrieval_epochs, seed=seed
    )
    ranking_model = train_ranking_model(train_columns, movie_columns, epochs=ranking_epochs, seed=seed)
    return retrieval_model, ranking_model


# --- from solutions/07_serving.py, section: 5. Raw strings in, features looked up inside the graph
USER_FEATURES = (
    "bucketized_user_age",
    "raw_user_age",
    "user_gender",
    "user_occupation_label",
    "user_occupation_text",
    "user_zip_code",
    "timestamp",
)


def user_feature_table(ratings: tf.data.Dataset) -> dict[str, np.ndarray]:
    """One row per user: ``user_id``, the profile features, and the latest ``timestamp``.

    MovieLens repeats a user's profile in each of their ratings; keeping the row of the
    most recent rating gives the profile plus the time the user was last active.
    """
    columns = to_numpy(ratings, ("user_id", *USER_FEATURES))
    order = np.lexsort((columns["timestamp"], columns["user_id"]))  # by user, then by time
    users = columns["user_id"][order]
    last_of_user = np.append(users[1:] != users[:-1], True)
    return {name: values[order][last_of_user] for name, values in columns.items()}


def movie_feature_table(movies: tf.data.Dataset) -> dict[str, np.ndarray]:
    """One row per distinct title: ``movie_title``, ``movie_id`` and ``movie_genres`` as text.

    Titles are the item key of the towers; the 18 titles that name two movie ids keep the
    smaller id. Genres become space-separated label numbers (``b"4 7"``).
    """
    batch = next(iter(movies.ragged_batch(1 << 20)))  # the whole catalogue in one batch
    titles = batch["movie_title"].numpy()
    ids = batch["movie_id"].numpy()
    genres = np.array([" ".join(str(g) for g in row).encode() for row in batch["movie_genres"].to_list()], dtype=object)
    order = np.argsort(ids.astype(np.int64), kind="stable")  # smaller movie id first
    _, first = np.unique(titles[order], return_index=True)
    keep = order[first]
    return {"movie_title": titles[keep], "movie_id": ids[keep], "movie_genres": genres[keep]}


def _most_common(values: np.ndarray):
    uniques, counts = np.unique(values, return_counts=True)
    return uniques[np.argmax(counts)]


def _static_table(keys: np.ndarray, values: np.ndarray, default) -> tf.lookup.StaticHashTable:
    values = tf.constant(values)
    initializer = tf.lookup.KeyValueTensorInitializer(tf.constant(keys, tf.string), values)
    return tf.lookup.StaticHashTable(initializer, default_value=tf.constant(default, values.dtype))


class FeatureLookup(tf.Module):
    """In-graph tables from raw ids to the feature dicts the towers and the ranker expect.

    Unknown user ids get each profile feature's most common value and the latest
    timestamp in the data; unknown titles get an empty genre list. ``user_features``
    also returns whether each id was known.
    """

    def __init__(self, users: Mapping[str, np.ndarray], movies: Mapping[str, np.ndarray]) -> None:
        super().__init__(name="feature_lookup")
        user_ids = np.asarray(users["user_id"])
        self.known_users = _static_table(user_ids, np.ones(len(user_ids), dtype=bool), False)
        self.user_tables = {}
        for name in USER_FEATURES:
            values = np.asarray(users[name])
            default = values.max() if name == "timestamp" else _most_common(values)
            self.user_tables[name] = _static_table(user_ids, values, default)
        titles = np.asarray(movies["movie_title"])
        self.movie_ids = _static_table(titles, np.asarray(movies["movie_id"]), b"")
        self.movie_genres = _static_table(titles, np.asarray(movies["movie_genres"]), b"")

    def user_features(self, user_id: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """``(features, known)`` for a ``(batch,)`` string tensor of user ids."""
        features = {"user_id": user_id}
        for name, table in self.user_tables.items():
            features[name] = table.lookup(user_id)
        return features, self.known_users.lookup(user_id)

    def movie_features(self, movie_title: tf.Tensor) -> dict[str, tf.Tensor]:
        """Movie features for a ``(batch,)`` string tensor of titles; genres are ragged."""
        genre_text = tf.strings.split(self.movie_genres.lookup(movie_title))
        return {
            "movie_title": movie_title,
            "movie_id": self.movie_ids.lookup(movie_title),
            "movie_genres": tf.strings.to_number(genre_text, out_type=tf.int64),
        }


# --- from solutions/07_serving.py, section: 6. Three servables with explicit signatures
SERVED_MODELS = ("query_tower", "ranker", "retrieval")
N_CANDIDATES = 100

# The documented contract of every exported model: name -> (dtype, shape); None is any size.
SIGNATURES = {
    "query_tower": {
        "inputs": {"user_id": ("string", (None,))},
        "outputs": {"embedding": ("float32", (None, None)), "known_user": ("bool", (None,))},
    },
    "ranker": {
        "inputs": {"user_id": ("string", (None,)), "movie_title": ("string", (None,))},
        "outputs": {"score": ("float32", (None,))},
    },
    "retrieval": {
        "inputs": {"user_id": ("string", (None,))},
        "outputs": {
            "titles": ("string", (None, N_CANDIDATES)),
            "scores": ("float32", (None, N_CANDIDATES)),
            "known_user": ("bool", (None,)),
        },
    },
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
    """Lesson 05's ``MovieRanker`` at inference without its clip to 1–5 stars: the score to sort by.

    ``clip(unclipped_rating(...), 1, 5) == ranker(features)``; :func:`check_unclipped`
    verifies that on real inputs before an export is written.
    """
    return ranker(features, training=False, clip=False)


class RankerServable(tf.Module):
    """``serving_default(user_id, movie_title) -> {score}``: one raw (unclipped) predicted rating per pair."""

    def __init__(self, ranker: tf.keras.Model, lookup: FeatureLookup) -> None:
        super().__init__(name="ranker_servable")
        self.ranker = ranker
        self.lookup = lookup

    def features(self, user_id: tf.Tensor, movie_title: tf.Tensor) -> dict[str, tf.Tensor]:
        features, _ = self.lookup.user_features(user_id)
        features.update(self.lookup.movie_features(movie_title))
        return features

    @tf.function(input_signature=[_strings("user_id"), _strings("movie_title")])
    def serve(self, user_id: tf.Tensor, movie_title: tf.Tensor) -> dict[str, tf.Tensor]:
        rating = unclipped_rating(self.ranker, self.features(user_id, movie_title))
        return {"score": tf.reshape(tf.cast(rating, tf.float32), [-1])}


def check_unclipped(servable: RankerServable, user_ids: Sequence[str], titles: Sequence[str]) -> None:
    """Raise ``ValueError`` if clipping the servable's score differs from the Keras model's own output."""
    users, movies = tf.constant(list(user_ids)), tf.constant(list(titles))
    raw = servable.serve(users, movies)["score"].numpy()
    keras = np.reshape(servable.ranker(servable.features(users, movies), training=False).numpy(), [-1])
    gap = float(np.max(np.abs(np.clip(raw, 1.0, 5.0) - keras)))
    if gap > 1e-4:
        raise ValueError(f"unclipped_rating no longer matches the ranker's call (gap {gap:.3g}); update it")


def distinct_titles(titles: Sequence[bytes], vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(titles, vectors)`` with one row per title, the first row of each, in catalogue order."""
    titles = np.asarray(titles)
    _, first = np.unique(titles, return_index=True)
    keep = np.sort(first)
    return titles[keep], np.asarray(vectors, dtype=np.float32)[keep]


class RetrievalServable(tf.Module):
    """``serving_default(user_id) -> {titles, scores, known_user}``: exact top-k over all movies."""

    def __init__(
        self,
        query_tower: tf.keras.Model,
        lookup: FeatureLookup,
        titles: Sequence[bytes],
        vectors: np.ndarray,
        k: int = N_CANDIDATES,
    ) -> None:
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


def save_servable(servable: tf.Module, path: str | Path) -> Path:
    """Save ``servable`` with ``serve`` as its ``serving_default`` signature, atomically.

    The SavedModel is written to a hidden sibling directory and renamed to ``path`` when
    complete, so a server watching the parent never sees half a model. Versions are
    immutable: an existing ``path`` is an error.
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} already exists; export a new version instead of overwriting one")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent / f".{path.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    tf.saved_model.save(servable, str(staging), signatures={"serving_default": servable.serve.get_concrete_function()})
    os.replace(staging, path)
    return path


# --- from solutions/07_serving.py, section: 7. Inspecting signatures, and checking the reloaded models
def describe_signatures(path: str | Path) -> dict[str, dict[str, dict[str, tuple[str, tuple]]]]:
    """``{signature: {"inputs"|"outputs": {name: (dtype, shape)}}}`` of a SavedModel.

    The Python equivalent of ``saved_model_cli show --all``; unknown dimensions are None.
    """
    loaded = tf.saved_model.load(str(path))

    def plain(specs: Mapping[str, tf.TensorSpec]) -> dict[str, tuple[str, tuple]]:
        return {name: (spec.dtype.name, tuple(spec.shape.as_list())) for name, spec in sorted(specs.items())}

    return {
        key: {"inputs": plain(fn.structured_input_signature[1]), "outputs": plain(fn.structured_outputs)}
        for key, fn in loaded.signatures.items()
    }


def check_signature(path: str | Path, model_name: str) -> None:
    """Raise ``ValueError`` naming the difference if ``path`` breaks ``SIGNATURES[model_name]``."""
    found = describe_signatures(path)
    if "serving_default" not in found:
        raise ValueError(f"{path} has no serving_default signature (it has {sorted(found)})")
    for side in ("inputs", "outputs"):
        expected, actual = SIGNATURES[model_name][side], found["serving_default"][side]
        if set(expected) != set(actual):
            raise ValueError(f"{path}: {side} are {sorted(actual)}, the contract says {sorted(expected)}")
        for name, (dtype, shape) in expected.items():
            got_dtype, got_shape = actual[name]
            shape_ok = len(shape) == len(got_shape) and all(e is None or e == g for e, g in zip(shape, got_shape))
            if got_dtype != dtype or not shape_ok:
                raise ValueError(
                    f"{path}: {side[:-1]} {name!r} is {got_dtype} {got_shape}, the contract says {dtype} {shape}"
                )


# --- from solutions/07_serving.py, section: 8. TF Serving's model layout, versions and config
ANNOY_DIR = "annoy"
ANNOY_FILE = "movies.ann"
HISTORY_FILE = "history.json"  # beside the index: who rated what in training, and the popularity fallback
TUNING_FILE = "tuning.json"  # beside the index: its n_trees, tuned search_k and measured recall@100
DOCKER_MODEL_BASE = "/models"
VERSIONS_KEPT = {"query_tower": 2, "ranker": 1, "retrieval": 1}
# Lesson 06, section 9: 10 trees, and the smallest search_k on this grid that reaches recall 0.95.
ANNOY_TREES = 10
TARGET_RECALL = 0.95
SEARCH_K_GRID = tuple(sorted({int(round(v)) for v in np.geomspace(10, 20_000, 40)}))
TUNING_USERS = 300  # query embeddings of this many training users tune search_k; recall@100 is reported on all


class ModelDirError(RuntimeError):
    """A model directory is missing or has no usable version; the message names the path."""


def version_dirs(model_dir: str | Path, marker: str = "saved_model.pb") -> list[int]:
    """The versions under ``model_dir``: numeric subdirectories that contain ``marker``, sorted."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.name.isdigit() and (p / marker).is_file())


def latest_version(model_dir: str | Path, marker: str = "saved_model.pb") -> int:
    """The highest version under ``model_dir``; ``ModelDirError`` naming the path if there is none."""
    versions = version_dirs(model_dir, marker)
    if not versions:
        raise ModelDirError(
            f"no model version in {Path(model_dir).resolve()}: expected numbered subdirectories "
            f"(1/, 2/, ...) each holding {marker}. Export the models first: python -m movierec.api export"
        )
    return versions[-1]


def next_version(base: str | Path) -> int:
    """One more than the highest version of any model under ``base`` (1 for a new base)."""
    base = Path(base)
    existing = [int(p.name) for p in base.glob("*/*") if p.name.isdigit() and p.is_dir()]
    return max(existing, default=0) + 1


def model_config_text(base_path: str, names: Sequence[str] = SERVED_MODELS) -> str:
    """A TF Serving ``model_config_list`` serving ``names`` from ``<base_path>/<name>``."""
    lines = ["model_config_list {"]
    for name in names:
        lines += [
            "  config {",
            f'    name: "{name}"',
            f'    base_path: "{base_path.rstrip("/")}/{name}"',
            '    model_platform: "tensorflow"',
            f"    model_version_policy {{ latest {{ num_versions: {VERSIONS_KEPT.get(name, 1)} }} }}",
            "  }",
        ]
    return "\n".join(lines + ["}"]) + "\n"


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
    """Export a new version of the three servables and the Annoy index under ``base``.

    Writes ``<base>/{query_tower,ranker,retrieval}/<v>/`` (SavedModels),
    ``<base>/annoy/<v>/`` (the index over one row per title, its sidecar, the tuning
    and the rating history) and the two config files, where ``v`` is
    :func:`next_version`. ``search_k`` is tuned on the query embeddings of training
    users against the exact ``retrieval`` servable, and the index's recall@100 against
    that servable over all training users is returned as ``annoy_recall_at_100``. The
    index is written last: the API only switches to version ``v`` once its index
    exists, and by then the towers of ``v`` are complete.
    """
    from movierec.retrieval import candidate_embeddings

    base = Path(base)
    version = next_version(base)
    users = user_feature_table(train)
    lookup = FeatureLookup(users, movie_feature_table(movies))
    titles, vectors = distinct_titles(*candidate_embeddings(retrieval_model, movies))
    servables = {
        "query_tower": QueryTowerServable(retrieval_model.query_tower, lookup),
        "ranker": RankerServable(ranking_model, lookup),
        "retrieval": RetrievalServable(retrieval_model.query_tower, lookup, titles, vectors),
    }
    user_ids = tf.constant(users["user_id"])
    check_unclipped(servables["ranker"], users["user_id"][:50].tolist(), titles[:50].tolist())
    for name, servable in servables.items():
        save_servable(servable, base / name / str(version))

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
    (base / "models.config").write_text(model_config_text(str(base.resolve())), encoding="utf-8")
    (base / "models.docker.config").write_text(model_config_text(DOCKER_MODEL_BASE), encoding="utf-8")
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

    movies = load_movies()
    train, validation, _ = random_split(load_ratings(), seed=seed)
    train = train.concatenate(validation)
    retrieval_model, ranking_model = train_models(train, movies, quick=quick, seed=seed)
    return export_models(
        base, retrieval_model=retrieval_model, ranking_model=ranking_model, train=train, movies=movies, seed=seed
    )


def _library_fingerprint(quick: bool, seed: int) -> str:
    """A hash of everything an export depends on: library sources, versions, budget, seed."""
    import movierec

    package = Path(movierec.__file__).resolve().parent
    digest = hashlib.sha256(f"{quick}|{seed}|{tf.__version__}|{sys.version_info[:2]}".encode())
    for name in ("dataset", "preprocessing", "retrieval", "ranking", "annoy", "serving"):
        source = package / f"{name}.py"
        digest.update(source.read_bytes() if source.is_file() else b"-")
    return digest.hexdigest()[:16]


def cached_course_models(cache_root: str | Path | None = None, *, quick: bool, seed: int = 42) -> Path:
    """A model base exported by :func:`export_course_models`, reused while nothing changed.

    The cache key hashes the library sources, TensorFlow's version, the budget and the
    seed, so an edit to any lesson's exported code retrains. Default location:
    ``build/cache/serving/`` beside the ``movierec`` package (``MOVIEREC_CACHE`` overrides).
    """
    import movierec

    default = Path(movierec.__file__).resolve().parent.parent / "build" / "cache" / "serving"
    root = Path(cache_root or os.environ.get("MOVIEREC_CACHE") or default)
    target = root / f"{'quick' if quick else 'full'}-{_library_fingerprint(quick, seed)}"
    if (target / "complete.json").is_file():
        return target
    staging = root / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    started = time.perf_counter()
    info = export_course_models(staging, quick=quick, seed=seed)
    seconds = round(time.perf_counter() - started, 1)
    meta = {"version": info["version"], "seconds": seconds, "quick": quick, "seed": seed}
    (staging / "complete.json").write_text(json.dumps(meta), encoding="utf-8")
    try:
        os.replace(staging, target)
    except OSError:  # another process finished the same export first; keep theirs
        shutil.rmtree(staging, ignore_errors=True)
    # The absolute paths in models.config were written for the staging directory.
    (target / "models.config").write_text(model_config_text(str(target.resolve())), encoding="utf-8")
    return target


# --- from solutions/07_serving.py, section: Starting TF Serving in Colab
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until(ready: Callable[[], bool], process: subprocess.Popen, timeout_s: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log.is_file() else ""
            raise RuntimeError(f"{what} exited with code {process.returncode} before it was ready; log:\n{tail}")
        with contextlib.suppress(Exception):
            if ready():
                return
        time.sleep(0.25)
    raise TimeoutError(f"{what} was not ready after {timeout_s:.0f} s (log: {log})")


@contextlib.contextmanager
def model_server(
    config_path: str | Path,
    *,
    rest_port: int | None = None,
    grpc_port: int | None = None,
    binary: str = "tensorflow_model_server",
    startup_timeout_s: float = 120.0,
) -> Iterator[dict[str, str]]:
    """Run a real ``tensorflow_model_server`` on 127.0.0.1 for the duration of a ``with`` block.

    Yields ``{"rest": "http://127.0.0.1:<port>", "grpc": "127.0.0.1:<port>"}`` once every
    model named in the config reports an AVAILABLE version. Raises ``FileNotFoundError``
    when the binary is not installed. The server is stopped on exit.
    """
    executable = shutil.which(binary)
    if executable is None:
        raise FileNotFoundError(f"{binary} is not on PATH; install TF Serving (see lesson 07, section 8)")
    rest_port, grpc_port = rest_port or free_port(), grpc_port or free_port()
    names = re.findall(r'name:\s*"([^"]+)"', Path(config_path).read_text(encoding="utf-8"))
    log = Path(tempfile.mkdtemp(prefix="tfserving-")) / "server.log"
    command = [executable, f"--port={grpc_port}", f"--rest_api_port={rest_port}", f"--model_config_file={config_path}"]
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    urls = {"rest": f"http://127.0.0.1:{rest_port}", "grpc": f"127.0.0.1:{grpc_port}"}

    def all_available() -> bool:
        client = TFServingRestClient(urls["rest"], timeout_s=1.0)
        return all("AVAILABLE" in client.model_versions(name).values() for name in names)

    try:
        _wait_until(all_available, process, startup_timeout_s, "tensorflow_model_server", log)
        yield urls
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- from solutions/07_serving.py, section: Exercise 3 (2 points): parse a row-format response
class ServingUnavailable(RuntimeError):
    """The model server could not be reached, or did not answer within the timeout."""


class ServingError(RuntimeError):
    """The model server answered, with an error (unknown model or version, bad inputs...)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _json_list(values: Any) -> list:
    """A NumPy/TensorFlow/Python column as a JSON-ready list (bytes decoded as UTF-8)."""
    if hasattr(values, "numpy"):
        values = values.numpy()
    array = np.asarray(values)
    if array.dtype.kind in "SO":
        array = np.vectorize(lambda v: v.decode("utf-8") if isinstance(v, bytes) else str(v), otypes=[object])(array)
    return array.tolist()


def columnar_request(inputs: Mapping[str, Any], signature_name: str = "serving_default") -> dict:
    """The JSON body of a columnar REST predict request: ``{"signature_name", "inputs"}``."""
    return {"signature_name": signature_name, "inputs": {name: _json_list(values) for name, values in inputs.items()}}


def _as_array(value: Any) -> np.ndarray:
    try:
        array = np.asarray(value)
    except ValueError as exc:  # ragged nested lists
        raise ServingError(f"TF Serving answered an output that is not a regular array ({exc})") from None
    return array.astype(np.float32) if array.dtype == np.float64 else array  # JSON numbers arrive as float64


def outputs_to_arrays(body: Mapping[str, Any], output_names: Sequence[str]) -> dict[str, np.ndarray]:
    """NumPy arrays from a columnar response ``{"outputs": ...}``; ``ServingError`` for ``{"error": ...}``.

    A single-output signature answers with the bare value, so the names are needed to
    label it. Floats come back as float32, like the model's own outputs.
    """
    if "error" in body:
        raise ServingError(str(body["error"]))
    if "outputs" not in body:
        raise ServingError(f"unexpected response from TF Serving, keys {sorted(body)}")
    outputs = body["outputs"]
    names = list(output_names)
    if isinstance(outputs, dict):
        missing = set(names) - set(outputs)
        if missing:
            raise ServingError(f"the response lacks outputs {sorted(missing)}")
        return {name: _as_array(outputs[name]) for name in names}
    if len(names) != 1:
        raise ServingError(f"got one unnamed output but expected {names}")
    return {names[0]: _as_array(outputs)}


def predict_url(base_url: str, model: str, version: int | None = None) -> str:
    """``<base>/v1/models/<model>[/versions/<v>]:predict``."""
    where = f"/versions/{int(version)}" if version is not None else ""
    return f"{base_url.rstrip('/')}/v1/models/{model}{where}:predict"


class TFServingRestClient:
    """A small, thread-safe client for TF Serving's REST API with a timeout on every call."""

    def __init__(self, base_url: str, timeout_s: float = 2.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"a REST base URL starts with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._local = threading.local()

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def _call(self, method: str, url: str, body: dict | None = None) -> dict:
        try:
            response = self._session().request(method, url, json=body, timeout=self.timeout_s)
        except requests.Timeout:
            message = f"TF Serving at {self.base_url} did not answer within {self.timeout_s:g} s"
            raise ServingUnavailable(message) from None
        except requests.RequestException as exc:
            raise ServingUnavailable(f"TF Serving at {self.base_url} is unreachable ({type(exc).__name__})") from None
        try:
            payload = response.json()
        except ValueError:
            payload = {"error": response.text[:200]}
        if response.status_code >= 400 or "error" in payload:
            message = f"TF Serving answered {response.status_code}: {payload.get('error', payload)}"
            raise ServingError(message, response.status_code)
        return payload

    def predict(
        self,
        model: str,
        inputs: Mapping[str, Any],
        output_names: Sequence[str],
        *,
        version: int | None = None,
        signature_name: str = "serving_default",
    ) -> dict[str, np.ndarray]:
        """Call ``model`` (optionally a pinned ``version``) with columnar inputs; arrays out."""
        body = self._call("POST", predict_url(self.base_url, model, version), columnar_request(inputs, signature_name))
        return outputs_to_arrays(body, output_names)

    def model_versions(self, model: str) -> dict[int, str]:
        """``{version: state}`` from ``GET /v1/models/<model>``, e.g. ``{1: "AVAILABLE"}``."""
        body = self._call("GET", f"{self.base_url}/v1/models/{model}")
        return {int(s["version"]): s["state"] for s in body.get("model_version_status", [])}


# --- from solutions/07_serving.py, section: 10. Calling TF Serving over gRPC
def grpc_predict_request(
    model: str, inputs: Mapping[str, Any], *, version: int | None = None, signature_name: str = "serving_default"
) -> predict_pb2.PredictRequest:
    """A ``PredictRequest`` for ``model`` with one ``TensorProto`` per input."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, values in inputs.items():
        array = values.numpy() if hasattr(values, "numpy") else np.asarray(values)
        if array.dtype.kind == "U":
            array = np.char.encode(array, "utf-8")
        request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
    return request


def grpc_response_to_arrays(response: predict_pb2.PredictResponse) -> dict[str, np.ndarray]:
    """``{output name: array}`` from a ``PredictResponse``; strings decoded to ``str``."""
    arrays = {}
    for name, proto in response.outputs.items():
        array = tf.make_ndarray(proto)
        if array.dtype == object:
            decode = np.vectorize(lambda v: v.decode("utf-8"), otypes=[object])
            array = decode(array) if array.size else array.astype(str)
        arrays[name] = array
    return arrays


class TFServingGrpcClient:
    """A client for TF Serving's gRPC API (``host:port``, usually port 8500), with timeouts."""

    def __init__(self, target: str, timeout_s: float = 2.0) -> None:
        if "://" in target:
            target = target.split("://", 1)[1]
        self.target = target
        self.timeout_s = timeout_s
        self._channel = grpc.insecure_channel(target)
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def _rpc(self, method: Callable, request: Any) -> Any:
        try:
            return method(request, timeout=self.timeout_s)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise ServingUnavailable(f"TF Serving at {self.target} is unavailable ({code.name})") from None
            details = exc.details() if hasattr(exc, "details") else str(exc)
            raise ServingError(f"TF Serving answered {getattr(code, 'name', code)}: {details}") from None

    def predict(
        self,
        model: str,
        inputs: Mapping[str, Any],
        output_names: Sequence[str] | None = None,
        *,
        version: int | None = None,
        signature_name: str = "serving_default",
    ) -> dict[str, np.ndarray]:
        """Call ``model`` over gRPC; the same arrays as :meth:`TFServingRestClient.predict`."""
        request = grpc_predict_request(model, inputs, version=version, signature_name=signature_name)
        response = self._rpc(self._predict.Predict, request)
        arrays = grpc_response_to_arrays(response)
        return arrays if output_names is None else {name: arrays[name] for name in output_names}

    def model_versions(self, model: str) -> dict[int, str]:
        """``{version: state}`` from the ``GetModelStatus`` RPC."""
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model
        response = self._rpc(self._models.GetModelStatus, request)
        state_name = get_model_status_pb2.ModelVersionStatus.State.Name
        return {int(s.version): state_name(s.state) for s in response.model_version_status}

    def close(self) -> None:
        self._channel.close()


# --- from solutions/07_serving.py, section: Two interchangeable backends
class InProcessBackend:
    """The exported SavedModels, loaded with ``tf.saved_model.load`` and called in-process."""

    name = "in-process"

    def __init__(self, base: str | Path, *, query_version: int, ranker_version: int | None = None) -> None:
        base = Path(base)
        query_dir = base / "query_tower" / str(query_version)
        if not (query_dir / "saved_model.pb").is_file():
            raise ModelDirError(
                f"the Annoy index is version {query_version} but {query_dir.resolve()} holds no SavedModel; "
                "the index and the query tower must come from the same export"
            )
        ranker_version = ranker_version or latest_version(base / "ranker")
        # Keep the loaded objects: their signatures need the tables and variables they own.
        self._query_model = tf.saved_model.load(str(query_dir))
        self._ranker_model = tf.saved_model.load(str(base / "ranker" / str(ranker_version)))
        self._embed = self._query_model.signatures["serving_default"]
        self._score = self._ranker_model.signatures["serving_default"]
        self._versions = {"query_tower": query_version, "ranker": ranker_version}

    def embed(self, user_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(embeddings (n, d) float32, known_user (n,) bool)``."""
        out = self._embed(user_id=tf.constant(list(user_ids), tf.string))
        return out["embedding"].numpy(), out["known_user"].numpy()

    def score(self, user_ids: Sequence[str], titles: Sequence[str]) -> np.ndarray:
        """Predicted ratings ``(n,)`` for the pairs ``(user_ids[i], titles[i])``."""
        out = self._score(
            user_id=tf.constant(list(user_ids), tf.string), movie_title=tf.constant(list(titles), tf.string)
        )
        return out["score"].numpy()

    def versions(self) -> dict[str, int]:
        return dict(self._versions)

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "backend": self.name}


class TFServingBackend:
    """The same two calls, answered by a TF Serving at ``url`` (``http://...`` REST, ``grpc://...`` gRPC)."""

    name = "tf-serving"

    def __init__(self, url: str, *, query_version: int, timeout_s: float = 2.0) -> None:
        self.url = url
        if url.startswith("grpc://"):
            self.client = TFServingGrpcClient(url, timeout_s=timeout_s)
        else:
            self.client = TFServingRestClient(url, timeout_s=timeout_s)
        self.query_version = query_version
        self._ranker_version: int | None = None

    def ranker_version(self) -> int:
        """The newest AVAILABLE ranker version, asked once and then remembered."""
        if self._ranker_version is None:
            available = [v for v, state in self.client.model_versions("ranker").items() if state == "AVAILABLE"]
            if not available:
                raise ServingUnavailable(f"TF Serving at {self.url} has no AVAILABLE version of the ranker")
            self._ranker_version = max(available)
        return self._ranker_version

    # The arrays go back as TF Serving sent them: the Recommender checks every answer's
    # types, shapes and values, whichever backend gave it.
    def embed(self, user_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        names = ["embedding", "known_user"]
        out = self.client.predict("query_tower", {"user_id": list(user_ids)}, names, version=self.query_version)
        return out["embedding"], out["known_user"]

    def score(self, user_ids: Sequence[str], titles: Sequence[str]) -> np.ndarray:
        inputs = {"user_id": list(user_ids), "movie_title": list(titles)}
        return self.client.predict("ranker", inputs, ["score"], version=self.ranker_version())["score"]

    def versions(self) -> dict[str, int | None]:
        return {"query_tower": self.query_version, "ranker": self._ranker_version}

    def health(self) -> dict[str, Any]:
        """Ask TF Serving for both models' states; ``ServingUnavailable`` if it does not answer."""
        query_states = self.client.model_versions("query_tower")
        if query_states.get(self.query_version) != "AVAILABLE":
            raise ServingUnavailable(
                f"TF Serving at {self.url} does not have query_tower version {self.query_version} AVAILABLE "
                f"(it reports {query_states}); it must serve the version the Annoy index was built for"
            )
        self._ranker_version = None  # re-resolve: a newer ranker may have been deployed
        return {"status": "ok", "backend": self.name, "url": self.url, "ranker_version": self.ranker_version()}


def load_backend(base: str | Path, *, query_version: int, tf_serving: str | None = None, timeout_s: float = 2.0):
    """``TFServingBackend`` when a server URL is given, else the embedded ``InProcessBackend``."""
    if tf_serving:
        return TFServingBackend(tf_serving, query_version=query_version, timeout_s=timeout_s)
    return InProcessBackend(base, query_version=query_version)


# --- from solutions/07_serving.py, section: The handler and the app
MAX_USER_ID_LENGTH = 64
API_TITLE = "movierec recommendation API"


class InvalidRequest(ValueError):
    """A request the API rejects with 422; the message says what to change."""


STARS = (1.0, 5.0)  # the rating scale: predicted ratings are clipped to it for display only


def _numbers(value: Any, what: str) -> np.ndarray:
    """``value`` as a NumPy array of real numbers; ``ServingError`` naming ``what`` otherwise."""
    try:
        array = np.asarray(value)
    except ValueError as exc:  # ragged nested lists
        raise ServingError(f"{what} is not a regular array ({exc})") from None
    if array.dtype.kind not in "fiu":
        raise ServingError(f"{what} should hold numbers, got values of type {array.dtype}")
    if not np.isfinite(array).all():
        raise ServingError(f"{what} contains NaN or infinite values")
    return array


def checked_embedding(answer: Any, n: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """A backend's ``embed`` answer for ``n`` users, checked: ``(float32 (n, dim), bool (n,))``.

    Raises ``ServingError`` (the API answers 502) for a wrong number of outputs, wrong
    types, a wrong embedding size or non-finite values: a model server that answers
    garbage must not turn into garbage recommendations.
    """
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        count = len(answer) if isinstance(answer, (tuple, list)) else type(answer).__name__
        raise ServingError(f"the query tower gave {count} outputs; expected 2 (embedding, known_user)")
    embedding = _numbers(answer[0], "the query tower's embedding")
    if embedding.shape != (n, dim):
        raise ServingError(
            f"the query tower returned embeddings of shape {embedding.shape}; the Annoy index needs ({n}, {dim})"
        )
    known = np.asarray(answer[1])
    if known.dtype.kind not in "biu" or known.shape != (n,):
        raise ServingError(f"the query tower's known_user should be {n} booleans, got {known.dtype} {known.shape}")
    return embedding.astype(np.float32), known.astype(bool)


def checked_scores(answer: Any, n: int) -> np.ndarray:
    """A backend's ``score`` answer for ``n`` pairs, checked: float64 ``(n,)``; ``ServingError`` otherwise."""
    scores = _numbers(answer, "the ranker's score")
    if scores.shape != (n,):
        raise ServingError(f"the ranker returned scores of shape {scores.shape} for {n} (user, title) pairs")
    return scores.astype(np.float64)


class Recommender:
    """Two-stage recommendations: a backend's query tower + an Annoy index, then its ranker.

    ``history`` is :func:`rating_history` of the training ratings: titles a user rated
    in training are never recommended to them, and users it does not know get the
    popularity fallback without any model call. ``search_k`` is the index's tuned
    search budget for ``n_candidates`` neighbours (scaled up when more are needed).
    """

    def __init__(
        self,
        backend: Any,
        index: MovieIndex,
        *,
        index_version: int,
        history: Mapping[str, Any],
        search_k: int = -1,
        n_candidates: int = N_CANDIDATES,
    ) -> None:
        self.backend = backend
        self.index = index
        self.index_version = index_version
        self.search_k = search_k
        self.n_candidates = min(n_candidates, len(index))
        self.catalogue_size = len(set(index.labels.tolist()))  # distinct titles
        self._duplicate_rows = len(index) - self.catalogue_size
        self.seen = {str(user): frozenset(titles) for user, titles in history["seen"].items()}
        self.popular = [(str(title), int(count)) for title, count in history["popular"]]
        self._probe = (min(self.seen, default="1"), str(index.labels[0]))

    def check_user_id(self, user_id: Any) -> str:
        if not isinstance(user_id, str) or not user_id.strip():
            raise InvalidRequest("user_id must be a non-empty string")
        if len(user_id) > MAX_USER_ID_LENGTH:
            raise InvalidRequest(f"user_id is {len(user_id)} characters long; the limit is {MAX_USER_ID_LENGTH}")
        if not user_id.isprintable():
            raise InvalidRequest("user_id contains control characters")
        return user_id

    def check_k(self, k: Any) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise InvalidRequest(f"k must be an integer, got {k!r}")
        if not 1 <= k <= self.catalogue_size:
            raise InvalidRequest(f"k must be between 1 and {self.catalogue_size} (the number of movies), got {k}")
        return int(k)

    def model_versions(self) -> dict[str, int | None]:
        return {**self.backend.versions(), "annoy_index": self.index_version}

    def warm_up(self) -> None:
        """One call through every stage, so the first real request pays no one-off costs.

        Also checks that the query tower and the index agree on the embedding size.
        """
        embedding, _ = self.backend.embed([self._probe[0]])
        if np.shape(embedding)[-1] != self.index.dim:
            raise ModelDirError(
                f"the query tower returns {np.shape(embedding)[-1]}-dimensional embeddings but the Annoy index at "
                f"{self.index.path} holds {self.index.dim}-dimensional ones: they come from different exports"
            )
        self.recommend(self._probe[0], 10)

    def probe(self) -> None:
        """One checked call to each model; ``ServingError``/``ServingUnavailable`` if either fails."""
        user, title = self._probe
        checked_embedding(self.backend.embed([user]), 1, self.index.dim)
        checked_scores(self.backend.score([user], [title]), 1)

    def health(self) -> dict[str, Any]:
        status = self.backend.health()
        self.probe()  # a server can be up and still answer garbage
        return {**status, "model_versions": self.model_versions(), "catalogue_size": self.catalogue_size}

    def popularity_fallback(self, user_id: str, k: int) -> dict[str, Any]:
        """The answer for a user the models never saw: the most rated movies in training, flagged."""
        return {
            "user_id": user_id,
            "known_user": False,
            "fallback": "popularity",
            "k": k,
            "recommendations": [{"title": title, "ratings_in_training": n} for title, n in self.popular[:k]],
            "candidates": 0,
            "model_versions": self.model_versions(),
            "backend": self.backend.name,
            "timings_ms": {"query_tower": 0.0, "annoy": 0.0, "ranker": 0.0},
            "warning": "unknown user id: these are the movies rated most often in training, not personalised",
        }

    def recommend(self, user_id: Any, k: Any = 10) -> dict[str, Any]:
        """The response of ``GET /recommend/{user_id}?k=...`` as a dict."""
        user_id, k = self.check_user_id(user_id), self.check_k(k)
        seen = self.seen.get(user_id)
        if seen is None:
            return self.popularity_fallback(user_id, k)
        started = time.perf_counter()
        embedding, known = checked_embedding(self.backend.embed([user_id]), 1, self.index.dim)
        embedded = time.perf_counter()
        wanted = max(self.n_candidates, k)
        # Room for every title the user rated and every repeated row: `wanted` new titles always fit.
        n_search = min(len(self.index), wanted + len(seen) + self._duplicate_rows)
        search_k = -1 if self.search_k < 0 else -(-self.search_k * n_search // self.n_candidates)
        retrieval_scores, positions = self.index.search(embedding[0], k=n_search, search_k=search_k)
        candidates: dict[str, float] = {}
        for position, retrieval_score in zip(positions[0], retrieval_scores[0]):
            title = str(self.index.labels[position])
            if title not in seen:
                candidates.setdefault(title, float(retrieval_score))
        titles = list(candidates)[:wanted]
        retrieved = time.perf_counter()
        scores = checked_scores(self.backend.score([user_id] * len(titles), titles), len(titles))
        order = np.argsort(-scores, kind="stable")[:k]  # the raw predictions decide the order
        ranked = time.perf_counter()
        return {
            "user_id": user_id,
            "known_user": bool(known[0]),
            "fallback": None,
            "k": k,
            "recommendations": [
                {
                    "title": titles[i],
                    "score": round(float(scores[i]), 6),
                    "stars": round(float(np.clip(scores[i], *STARS)), 2),
                    "retrieval_score": round(candidates[titles[i]], 6),
                }
                for i in order
            ],
            "candidates": len(titles),
            "model_versions": self.model_versions(),
            "backend": self.backend.name,
            "timings_ms": {
                "query_tower": round(1000 * (embedded - started), 3),
                "annoy": round(1000 * (retrieved - embedded), 3),
                "ranker": round(1000 * (ranked - retrieved), 3),
            },
        }


def load_recommender(
    base: str | Path, *, tf_serving: str | None = None, timeout_s: float = 2.0, n_candidates: int = N_CANDIDATES
) -> Recommender:
    """The API's model stack from a model base: newest Annoy index + matching query tower + ranker.

    Raises ``ModelDirError`` (naming the path) when the base or a model directory has no
    version, and, for the in-process backend, when the models do not fit together.
    """
    base = Path(base)
    if not base.is_dir():
        raise ModelDirError(
            f"model directory {base.resolve()} does not exist; "
            f"export the models first: python -m movierec.api export --out {base}"
        )
    version = latest_version(base / ANNOY_DIR, marker=ANNOY_FILE)
    index_dir = base / ANNOY_DIR / str(version)
    missing = [name for name in (HISTORY_FILE, TUNING_FILE) if not (index_dir / name).is_file()]
    if missing:
        raise ModelDirError(f"{index_dir.resolve()} lacks {', '.join(missing)}; export the models again")
    index = MovieIndex.load(index_dir / ANNOY_FILE)
    history = json.loads((index_dir / HISTORY_FILE).read_text(encoding="utf-8"))
    tuning = json.loads((index_dir / TUNING_FILE).read_text(encoding="utf-8"))
    backend = load_backend(base, query_version=version, tf_serving=tf_serving, timeout_s=timeout_s)
    recommender = Recommender(
        backend, index, index_version=version, history=history, search_k=tuning["search_k"], n_candidates=n_candidates
    )
    if tf_serving is None:  # a remote server may come up later; it is checked by /healthz and each request
        recommender.warm_up()
    return recommender


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(recommender: Recommender) -> FastAPI:
    """The FastAPI application: ``GET /recommend/{user_id}?k=10`` and ``GET /healthz``."""
    import movierec

    app = FastAPI(title=API_TITLE, version=movierec.__version__)
    app.state.recommender = recommender
    log = logging.getLogger("movierec.api")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            usage = "use GET /recommend/{user_id}?k=10 or GET /healthz"
            return _error(404, f"no endpoint at {request.url.path}; {usage}")
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{' '.join(str(part) for part in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors()
        ]
        return _error(422, "invalid request: " + "; ".join(problems))

    @app.exception_handler(InvalidRequest)
    async def rejected(request: Request, exc: InvalidRequest) -> JSONResponse:
        return _error(422, str(exc))

    @app.exception_handler(ServingUnavailable)
    async def unavailable(request: Request, exc: ServingUnavailable) -> JSONResponse:
        return _error(503, f"the model server is unavailable: {exc}")

    @app.exception_handler(ServingError)
    async def bad_gateway(request: Request, exc: ServingError) -> JSONResponse:
        return _error(502, f"the model server failed or answered malformed data: {exc}")

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return _error(500, "internal error; the server log has the details")

    # Returning a JSONResponse skips FastAPI's response-model validation of the dict:
    # the recommender already builds plain JSON types, so that step would only cost time.
    @app.get("/healthz")
    def healthz() -> JSONResponse:
        try:
            return JSONResponse(recommender.health())
        except (ServingUnavailable, ServingError) as exc:
            body = {"status": "unhealthy", "backend": recommender.backend.name, "error": f"the model server: {exc}"}
            return JSONResponse(body, status_code=503)

    @app.get("/recommend/{user_id}")
    def recommend(user_id: str, k: int = 10) -> JSONResponse:
        return JSONResponse(recommender.recommend(user_id, k))

    return app


# --- from solutions/07_serving.py, section: 13. Measuring latency
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float]:
    """Count, mean, p50, p95, p99 and max of a list of latencies in milliseconds."""
    values = np.asarray(latencies_ms, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no latencies to summarise")
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {
        "n": int(values.size),
        "mean_ms": float(values.mean()),
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "max_ms": float(values.max()),
    }


def load_test(
    base_url: str,
    user_ids: Sequence[str],
    *,
    concurrency: int,
    duration_s: float,
    k: int = 10,
    max_requests: int = 200_000,
    timeout_s: float = 5.0,
    warmup_requests: int = 20,
    seen: Mapping[str, Collection[str]] | None = None,
) -> dict[str, Any]:
    """Closed-loop load on ``GET /recommend/{user_id}?k=k`` of an API on the loopback.

    ``concurrency`` threads each send a request, wait for it, and send the next, cycling
    through ``user_ids``, until ``duration_s`` has passed or ``max_requests`` were sent.
    Returns the latency summary of successful requests, throughput, error count, and the
    server's mean time per stage (from ``timings_ms``). With ``seen`` (user id -> titles
    the user rated in training) it also counts the returned titles and how many of them
    the user had rated: ``returned_titles``, ``seen_titles`` and ``seen_share``.
    """
    host = urlparse(base_url).hostname
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"load tests only target this machine's loopback, not {host!r}")
    if concurrency < 1 or duration_s <= 0 or not user_ids:
        raise ValueError("need concurrency >= 1, duration_s > 0 and at least one user id")
    parsed = urlparse(base_url)
    port = parsed.port or 80
    paths = [f"{parsed.path.rstrip('/')}/recommend/{quote(str(user_id), safe='')}?k={k}" for user_id in user_ids]

    def get(connection: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
        connection.request("GET", path)
        reply = connection.getresponse()
        return reply.status, reply.read()

    warm = http.client.HTTPConnection(host, port, timeout=timeout_s)  # connections, caches, first calls
    for path in itertools.islice(itertools.cycle(paths), warmup_requests):
        get(warm, path)
    warm.close()
    counter = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    stages: list[dict[str, float]] = []
    errors: list[str] = []
    counted = {"returned_titles": 0, "seen_titles": 0}
    start = threading.Barrier(concurrency + 1)
    deadline = [0.0]

    def client() -> None:
        # http.client with keep-alive: a lean client, so that the load generator's own CPU
        # use (it shares the machine with the server) disturbs the measurement little.
        connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
        start.wait()
        while True:
            with lock:
                i = next(counter)
            if i >= max_requests or time.monotonic() >= deadline[0]:
                break
            sent = time.perf_counter()
            try:
                status, payload = get(connection, paths[i % len(paths)])
                elapsed = 1000 * (time.perf_counter() - sent)
                problem = None if status == 200 else f"HTTP {status}"
            except (OSError, http.client.HTTPException) as exc:
                problem = type(exc).__name__
                connection.close()
                connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
            with lock:
                if problem is None:
                    body = json.loads(payload)
                    latencies.append(elapsed)
                    stages.append(body["timings_ms"])
                    if seen is not None:
                        titles = [item["title"] for item in body["recommendations"]]
                        counted["returned_titles"] += len(titles)
                        counted["seen_titles"] += len(set(titles) & set(seen.get(body["user_id"], ())))
                else:
                    errors.append(problem)
        connection.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    deadline[0] = time.monotonic() + duration_s
    began = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join(timeout=duration_s + 2 * timeout_s + 5)
    seconds = time.perf_counter() - began
    result: dict[str, Any] = {
        "concurrency": concurrency,
        "seconds": round(seconds, 3),
        "requests": len(latencies),
        "errors": len(errors),
    }
    if latencies:
        result.update(latency_summary(latencies))
        result["throughput_rps"] = len(latencies) / seconds
        result["server_mean_ms"] = {stage: float(np.mean([s[stage] for s in stages])) for stage in stages[0]}
    if seen is not None:
        result.update(counted)
        result["seen_share"] = counted["seen_titles"] / max(counted["returned_titles"], 1)
    result["latencies_ms"] = latencies
    return result


@contextlib.contextmanager
def api_server(
    models: str | Path,
    *,
    port: int | None = None,
    tf_serving: str | None = None,
    startup_timeout_s: float = 180.0,
    env: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """Run ``python -m movierec.api serve`` on 127.0.0.1 in a child process; yield its URL.

    Waits until ``/healthz`` answers 200 (raising with the log's tail if the process
    exits first), and stops the process when the ``with`` block ends.
    """
    import movierec

    port = port or free_port()
    command = [sys.executable, "-m", "movierec.api", "serve", "--models", str(models)]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    if tf_serving:
        command += ["--tf-serving", tf_serving]
    child_env = dict(os.environ)
    root = str(Path(movierec.__file__).resolve().parent.parent)
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, child_env.get("PYTHONPATH", "")]))
    child_env.update(env or {})
    log = Path(tempfile.mkdtemp(prefix="movierec-api-")) / "api.log"
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=child_env)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        return requests.get(f"{url}/healthz", timeout=2).status_code == 200

    try:
        _wait_until(healthy, process, startup_timeout_s, "the recommendation API", log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
