# %% [markdown]
# # Lesson 07 — TensorFlow Serving
#
# The models of lessons 04 and 05 live, so far, inside a notebook. Before other programs
# can use them they must become **servables**: self-contained SavedModels with a published
# contract, laid out so that a model server can load them, switch versions without
# downtime and answer over the network. This lesson does that with **TensorFlow
# Serving**; lesson 08 builds the recommendation service on top.
#
# In this lesson you will:
#
# * export the query tower, the ranking model and an exact-retrieval model as
#   **SavedModels** with explicit, named signatures that take raw strings, and meet two
#   traps on the way;
# * inspect the signatures and check that the reloaded models answer like the in-memory ones;
# * lay the models out the way TF Serving expects, with **versions**, a **model config**,
#   **version policies** and **labels**;
# * write **warm-up records** that TF Serving replays before a version takes traffic;
# * call TF Serving over **REST** (both request formats, the metadata endpoint, errors) and
#   **gRPC**, and see how it **batches** requests.
#
# **Time:** about 2 hours (three exercises, 50 minutes of reading the text and the code, one run of the lesson).
#
# The cells tagged `export` become two modules of the library package `movierec.serving`,
# each named on the cell's first line: `serving.export` (servables, layout, config,
# warm-up) and `serving.clients` (REST and gRPC clients).

# %% tags=["setup"]
from movierec.setup import setup_lesson

setup_lesson()

# %%
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow_recommenders as tfrs

from movierec.report import record
from movierec.setup import quick_mode

QUICK = quick_mode()
scratch = Path(tempfile.mkdtemp(prefix="movierec-serving-"))
# Every save logs "Assets written to ..." (and Keras adds warnings); keep TensorFlow's Python
# logger to errors so the lesson's own output stays readable. Set it to logging.INFO to see all.
logging.getLogger("tensorflow").setLevel(logging.ERROR)
print("quick mode:", QUICK, "| scratch directory:", scratch)


# %% [markdown]
# ## 1. What TensorFlow Serving does
#
# TF Serving is a C++ server that loads SavedModels and answers predictions over gRPC
# (usually port 8500) and, if you ask for it, REST (port 8501). It watches a directory per
# model, loads each new **version** in the background, switches traffic to it once it is
# ready and unloads the old one, so a deployment is "copy a new numbered directory". It
# merges concurrent requests into **batches** when told to, and it answers questions about
# itself: which versions are loaded, and what each model's signatures look like (Olston
# et al., 2017).
#
# Three ideas carry the lesson: an exported model is a program with a **contract** (its
# signature: named inputs and outputs with dtypes and shapes); clients send **raw
# values** (a user id, a title), because lookups travel inside the model; and deployment
# is **configuration** (versions, labels, warm-up, batching live in files, not in code).
#
# **Which release?** TF Serving is released in step with TensorFlow, with the same version
# numbers, and a server can only run the operations its TensorFlow knows: use the release
# whose number is the `tf.__version__` that exported the models, or a newer one. This
# course pins TensorFlow `2.21`, so TF Serving `2.21` (the `tensorflow/serving:2.21.0`
# image, or the `tensorflow-model-server` apt package of that release); the Python client
# package, `tensorflow-serving-api`, is pinned to the same release. In Colab, match
# Colab's own `tf.__version__`.

# %% [markdown]
# ## 2. The models we will serve
#
# We train the feature-rich two-tower model of lesson 04 and the ranking model of lesson
# 05 on the course's seeded 80/20 split (lesson 02), with the training functions that
# `movierec` exports: the retrieval model for lesson 04's 3 epochs, and the ranking model
# with lesson 05's early stopping, so the API serves lesson 05's best ranker. In quick
# mode (`COURSE_QUICK=1`, used by the tests) each model gets a single epoch: the models
# then recommend worse, but every step of serving works the same. The cell is library
# code (tagged `export`): the command that exports the models for the API calls the same
# function.

# %% tags=["export"]
#| export serving.export
import tensorflow as tf


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


# %%
from movierec.dataset import load_movies, load_ratings, random_split

movies = load_movies()
train, validation, test = random_split(load_ratings())
train = train.concatenate(validation)  # nothing is tuned here: train on all 80,000
started = time.perf_counter()
retrieval_model, ranking_model = train_models(train, movies, quick=QUICK)
training_seconds = time.perf_counter() - started
print(f"trained both models in {training_seconds:.0f} s")

# %% [markdown]
# ## 3. What a SavedModel is
#
# A **SavedModel** is TensorFlow's format for a model that must run without the code
# that built it. `tf.saved_model.save(obj, path)` writes a directory:
#
# | file | what it holds |
# | --- | --- |
# | `saved_model.pb` | the traced TensorFlow functions as graphs, and the **signatures** |
# | `variables/` | the values of every variable (weights, embedding tables), as a checkpoint |
# | `assets/` | files the graphs read at load time, such as vocabulary files |
# | `fingerprint.pb` | hashes that identify this exact export |
#
# TensorFlow cannot save Python; it saves **traced functions**, graphs recorded when a
# `tf.function` runs with a given input signature. A **signature** is such a graph
# published under a name, with named inputs and outputs, for servers and other languages
# to call; a server uses `serving_default` when a request names none.
# `tf.saved_model.load(path).signatures` holds them, callable with keyword arguments.
#
# ### Trap 1: an index saved before it was called has no signature
#
# Saved without a list of signatures, a Keras layer publishes the functions it has
# *already traced*. A TFRS `BruteForce` layer that was indexed but never called has traced
# nothing: it saves without an error (only a logged warning) and loads back with **no
# signature at all**. Here it is, over the catalogue's embeddings (lesson 04's
# `candidate_embeddings`).

# %%
from movierec.retrieval import candidate_embeddings

catalogue_titles, catalogue_vectors = candidate_embeddings(retrieval_model, movies)
print("catalogue:", catalogue_vectors.shape, "embeddings for", len(catalogue_titles), "titles")

naive_index = tfrs.layers.factorized_top_k.BruteForce(k=10)
naive_index.index(candidates=tf.constant(catalogue_vectors), identifiers=tf.constant(catalogue_titles))
tf.saved_model.save(naive_index, str(scratch / "trap1_never_called"))
print("signatures after saving an uncalled layer:", list(tf.saved_model.load(str(scratch / "trap1_never_called")).signatures))

# %% [markdown]
# An empty list. TF Serving would load this model and then answer every request with
# an error saying the signature `serving_default` was not found.
#
# ### Trap 2: generated names are not a contract
#
# Call the layer once and save again: now there is a signature, but look at its names.

# %%
some_queries = tf.constant(catalogue_vectors[:2])  # any (batch, dim) float tensor will do
naive_index(some_queries)
tf.saved_model.save(naive_index, str(scratch / "trap2_called_once"))
generated = tf.saved_model.load(str(scratch / "trap2_called_once")).signatures["serving_default"]
print("inputs: ", generated.structured_input_signature[1])
print("outputs:", generated.structured_outputs)

# %% [markdown]
# `input_1`, `output_1`, `output_2`: names Keras made up from argument positions and the
# order of the returned tuple. Return the identifiers first and every client reading
# `output_1` silently gets the other tensor. And this signature takes *embeddings*, so a
# client would have to run the query tower itself.
#
# The cure for both traps is the same: **wrap what you export in a `tf.Module` whose
# serving method is a `tf.function` with an explicit `input_signature`**, name each input
# in its `tf.TensorSpec(..., name=...)`, return a dictionary whose keys are the output
# names, and pass the method to `tf.saved_model.save(..., signatures=...)`. The trace
# then happens at save time, whether or not anything was called before, and the names
# are yours.
#
# ## 4. An export with an explicit signature
#
# ### Exercise 1 (2 points): export a string-to-embedding model
#
# Write `export_embedding_model(model, path, input_name, output_name)`. `model` maps a
# batch of strings, shape `(batch,)`, to a batch of embeddings, shape `(batch, dim)`.
# Save it to `path` so that the SavedModel has a `serving_default` signature with one
# input called `input_name` (`tf.string`, shape `(None,)`) and one output called
# `output_name` (`tf.float32`, shape `(None, dim)`).
#
# **Hint:** the cure above, applied to `model`; attach the model to the module so its
# variables are saved. The SavedModel guide's section on specifying signatures shows
# the pieces (References).

# %% nbgrader={"grade": false, "grade_id": "export_embedding_model", "locked": false, "schema_version": 3, "solution": true}
def export_embedding_model(model, path, input_name: str = "user_id", output_name: str = "embedding") -> Path:
    """Save ``model`` (strings ``(batch,)`` -> float32 ``(batch, dim)``) with an explicit signature.

    Args:
        model: a Keras model or layer, or a ``tf.Module``, that maps a 1-D string tensor
            to a 2-D float32 tensor.
        path: directory to write the SavedModel into (created by the save).
        input_name: the name of the signature's only input.
        output_name: the name of the signature's only output.

    Returns:
        ``Path(path)``. Loading it with ``tf.saved_model.load`` gives an object whose
        ``signatures["serving_default"]`` accepts ``**{input_name: strings}`` (any batch
        size, including 1) and returns ``{output_name: embeddings}`` equal to
        ``model(strings)``.
    """
    ### BEGIN SOLUTION
    module = tf.Module()
    module.model = model

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=input_name)])
    def serve(strings):
        return {output_name: tf.cast(model(strings), tf.float32)}

    module.serve = serve
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    return Path(path)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_export_embedding_model", "locked": true, "points": 2, "schema_version": 3, "solution": false}
from movierec.checks import close as _close
_user_ids = np.unique([example["user_id"] for example in train.take(2_000).as_numpy_iterator()])
_embedder = tf.keras.Sequential([
    tf.keras.layers.StringLookup(vocabulary=_user_ids),
    tf.keras.layers.Embedding(len(_user_ids) + 1, 8, embeddings_initializer=tf.keras.initializers.RandomNormal(seed=7)),
])
_probe = tf.constant([_user_ids[0], _user_ids[-1], b"no-such-user"])
_expected = _embedder(_probe).numpy()
_path = export_embedding_model(_embedder, scratch / "exercise1", "user_id", "embedding")
assert Path(_path) == scratch / "exercise1", "return the path you saved to, as a pathlib.Path"
_loaded = tf.saved_model.load(str(_path))
assert "serving_default" in _loaded.signatures, f"no serving_default signature; found {list(_loaded.signatures)}"
_signature = _loaded.signatures["serving_default"]
_inputs = _signature.structured_input_signature[1]
assert list(_inputs) == ["user_id"], f"the signature's inputs should be exactly ['user_id'], got {list(_inputs)}"
assert _inputs["user_id"].dtype == tf.string, f"the input should be tf.string, got {_inputs['user_id'].dtype}"
assert _inputs["user_id"].shape.as_list() == [None], f"the input should have shape (None,) to accept any batch, got {_inputs['user_id'].shape}"
_outputs = _signature.structured_outputs
assert list(_outputs) == ["embedding"], f"the outputs should be exactly ['embedding'], got {list(_outputs)}"
assert _outputs["embedding"].dtype == tf.float32, f"the output should be float32, got {_outputs['embedding'].dtype}"
_answer = _signature(user_id=_probe)["embedding"].numpy()
assert _close(_answer, _expected, rtol=0.0, atol=1e-6), "the reloaded model should answer exactly like the in-memory one"
print("export_embedding_model: visible tests passed")
### BEGIN HIDDEN TESTS
_path2 = export_embedding_model(_embedder, str(scratch / "exercise1_other_names"), "movie_title", "vector")
_signature2 = tf.saved_model.load(str(_path2)).signatures["serving_default"]
assert list(_signature2.structured_input_signature[1]) == ["movie_title"], "use input_name for the input"
assert list(_signature2.structured_outputs) == ["vector"], "use output_name for the output"
assert _signature2.structured_outputs["vector"].shape.as_list() == [None, 8], "the output shape should be (None, dim)"
_one = _signature2(movie_title=tf.constant([_user_ids[3]]))["vector"].numpy()
assert _close(_one, _embedder(tf.constant([_user_ids[3]])).numpy(), rtol=0.0, atol=1e-6), "a batch of one must work too"
assert len(_loaded.signatures) == 1, f"publish exactly one signature, found {list(_loaded.signatures)}"
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Raw strings in, features looked up inside the graph
#
# Our towers and ranker take dicts of raw features (age bracket, occupation, zip code,
# time, genres), but a client knows only a user id and, for ranking, a title. So the
# exported models carry **lookup tables** built from the training data: user id → profile
# and the time of the user's latest rating (the "now" we serve them at), and title →
# movie id and genres. A `tf.lookup.StaticHashTable` is saved with the model like a
# variable, so the lookups run inside the graph, in TF Serving too. An unknown user id
# gets each feature's most common value and the out-of-vocabulary embedding, and a
# `known_user` output says the model was guessing. Genre lists are stored as text
# (`"4 7"`) that the graph splits into a ragged tensor.
#
# !!! warning "Two simplifications, and what production does instead"
#     Freezing the tables into the SavedModel keeps the lesson self-contained, but
#     **the profiles are frozen** (a user who changes occupation, or signs up, after the
#     export is served with the old row, or as a stranger) and **"now" is stale** (each
#     user is served at the time of their last training rating, while the model learnt
#     from features computed at each rating's time: *training/serving skew*). The list
#     of movies a user rated (lesson 08) is frozen the same way. In production the
#     service looks features up **at request time** from a **feature store** (such as
#     Feast) that streaming jobs keep current; the request's clock is "now", and the
#     exported model takes features, never tables of them.
#
# This cell and the next are library code; read them for the ideas, not every line.

# %% tags=["export"]
#| export serving.export
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf

from movierec.dataset import to_numpy

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


# %% [markdown]
# ## 6. Three servables with explicit signatures
#
# Each model we export is a small `tf.Module` — a **servable**, in TF Serving's words —
# that holds the trained Keras model and the lookup tables, and one `serve` method with
# an explicit input signature. Here are the contracts. Every input is a batch of strings;
# `None` is the batch dimension, `d` the embedding size and `k` the number of titles the
# exact-retrieval model returns (100).
#
# | model | inputs | outputs |
# | --- | --- | --- |
# | `query_tower` | `user_id`: string `(None,)` | `embedding`: float32 `(None, d)`; `known_user`: bool `(None,)` |
# | `ranker` | `user_id`, `movie_title`: string `(None,)` | `score`: float32 `(None,)`, the predicted rating, not clipped |
# | `retrieval` | `user_id`: string `(None,)` | `titles`: string `(None, k)`; `scores`: float32 `(None, k)`; `known_user`: bool `(None,)` |
#
# `retrieval` wraps a TFRS `BruteForce` layer over one row per distinct title (18
# MovieLens titles have two movie ids; `distinct_titles` keeps the first row), traced at
# save time, so trap 1 cannot bite. Lesson 08's service uses Annoy; this exact model is
# the reference for measuring the index's recall.
#
# The ranker's `score` is the raw prediction. `MovieRanker` clips to 1–5 stars, right
# for RMSE but wrong for ordering (every movie rated above 5 would tie at 5.0), so
# `unclipped_rating` runs the same layers without the clip; the service orders by it
# and clips only the `stars` it shows.
#
# `save_servable` writes into a temporary sibling directory and renames it into place
# when complete: TF Serving may start loading a version directory the moment it
# appears, and a half-written one would fail to load.

# %% tags=["export"]
#| export serving.export
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tensorflow_recommenders as tfrs

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


def save_servable(servable: tf.Module, path: str | Path, *, warmup: Sequence[Mapping[str, Any]] = ()) -> Path:
    """Save ``servable`` with ``serve`` as its ``serving_default`` signature, atomically.

    The SavedModel (and, given ``warmup`` examples, TF Serving's warm-up file, section 9)
    is written to a hidden sibling directory and renamed to ``path`` when complete, so a
    server watching the parent never sees half a model. Versions are immutable: an
    existing ``path`` is an error.
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} already exists; export a new version instead of overwriting one")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent / f".{path.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    tf.saved_model.save(servable, str(staging), signatures={"serving_default": servable.serve.get_concrete_function()})
    if warmup:
        write_warmup(staging, path.parent.name, warmup)
    os.replace(staging, path)
    return path


WARMUP_PATH = Path("assets.extra") / "tf_serving_warmup_requests"  # inside a version directory; TF Serving replays it
MAX_WARMUP_RECORDS = 1000  # TF Serving reads at most this many


def write_warmup(
    version_dir: str | Path,
    model_name: str,
    examples: Sequence[Mapping[str, Any]],
    signature_name: str = "serving_default",
) -> Path:
    """Write TF Serving's warm-up file into ``version_dir``: one ``PredictionLog`` per example.

    Each example maps input names to a batch of values; each becomes one ``PredictRequest``
    that TF Serving (and :func:`replay_warmup`) sends through the model before it serves.
    """
    from tensorflow_serving.apis import prediction_log_pb2

    if not 1 <= len(examples) <= MAX_WARMUP_RECORDS:
        raise ValueError(f"a warm-up file holds 1 to {MAX_WARMUP_RECORDS} requests, got {len(examples)}")
    path = Path(version_dir) / WARMUP_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for inputs in examples:
            log = prediction_log_pb2.PredictionLog()
            log.predict_log.request.model_spec.name = model_name
            log.predict_log.request.model_spec.signature_name = signature_name
            for name, values in inputs.items():
                array = np.asarray(values)
                array = np.char.encode(array, "utf-8") if array.dtype.kind == "U" else array
                log.predict_log.request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
            writer.write(log.SerializeToString())
    return path


def replay_warmup(version_dir: str | Path, signature: Callable) -> int:
    """Call ``signature`` with every warm-up request of ``version_dir``, as TF Serving does on load.

    Returns how many requests were replayed (0 without a warm-up file).
    """
    from tensorflow_serving.apis import prediction_log_pb2

    path = Path(version_dir) / WARMUP_PATH
    if not path.is_file():
        return 0
    count = 0
    for raw in tf.data.TFRecordDataset(str(path)):
        request = prediction_log_pb2.PredictionLog.FromString(raw.numpy()).predict_log.request
        signature(**{name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()})
        count += 1
    return count


# %% [markdown]
# Let us build the three servables from the models trained in section 2 and save them,
# each as version 1 of its own model directory (section 8 explains the layout).

# %%
lookup = FeatureLookup(user_feature_table(train), movie_feature_table(movies))
servables = {
    "query_tower": QueryTowerServable(retrieval_model.query_tower, lookup),
    "ranker": RankerServable(ranking_model, lookup),
    "retrieval": RetrievalServable(retrieval_model.query_tower, lookup, catalogue_titles, catalogue_vectors),
}
export_base = scratch / "models"
started = time.perf_counter()
for name, servable in servables.items():
    save_servable(servable, export_base / name / "1")
print(f"saved {len(servables)} servables in {time.perf_counter() - started:.1f} s:")
for path in sorted(export_base.rglob("*")):
    if path.is_file():
        print(f"  {path.relative_to(export_base)}  ({path.stat().st_size / 1024:,.0f} KiB)")

# %% [markdown]
# ## 7. Inspecting signatures, and checking the reloaded models
#
# Before handing a model to a server, look at what you exported. TensorFlow ships a
# command-line tool for that, `saved_model_cli`; `show --dir PATH --all` lists every
# signature with its inputs and outputs, dtypes and shapes:
#
# ```bash
# saved_model_cli show --dir build/models/ranker/1 --tag_set serve --signature_def serving_default
# ```
#
# Here it is on the ranker (`-1` is the batch dimension):

# %%
cli = shutil.which("saved_model_cli") or str(Path(sys.executable).with_name("saved_model_cli"))
shown = subprocess.run(
    [cli, "show", "--dir", str(export_base / "ranker" / "1"), "--tag_set", "serve", "--signature_def", "serving_default"],
    capture_output=True, text=True, check=False,
)
print(shown.stdout or shown.stderr[-2000:])

# %% [markdown]
# The Python equivalent loads the model and reads `structured_input_signature` and
# `structured_outputs` of the signature. `describe_signatures` (library code) turns that
# into plain names, dtypes and shapes, and `check_signature` compares them with the
# contract of section 6, so a test — or a deployment script — can refuse an export that
# breaks it.

# %% tags=["export"]
#| export serving.export
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


# %%
for name in SERVED_MODELS:
    check_signature(export_base / name / "1", name)
    print(name, describe_signatures(export_base / name / "1")["serving_default"])

# %% [markdown]
# Now the check that matters most: **does the reloaded model answer exactly like the one
# in memory?** An export can go wrong in ways no signature shows — a vocabulary file not
# copied into `assets/`, a layer that behaves differently at inference, a lookup default
# that differs. We send the same users (and a user id that does not exist) to each
# in-memory servable and to its reloaded copy, and compare every output.

# %%
probe_users = tf.constant([b"42", b"1", b"943", b"not-a-user"])
probe_titles = tf.constant([b"Star Wars (1977)", b"Fargo (1996)", b"Toy Story (1995)", b"Star Wars (1977)"])
probe_args = {"query_tower": (probe_users,), "ranker": (probe_users, probe_titles), "retrieval": (probe_users,)}
probe_kwargs = {
    "query_tower": {"user_id": probe_users},
    "ranker": {"user_id": probe_users, "movie_title": probe_titles},
    "retrieval": {"user_id": probe_users},
}
reload_gap = 0.0
for name, servable in servables.items():
    in_memory = servable.serve(*probe_args[name])
    reloaded = tf.saved_model.load(str(export_base / name / "1")).signatures["serving_default"](**probe_kwargs[name])
    for output, value in in_memory.items():
        a, b = value.numpy(), reloaded[output].numpy()
        if a.dtype.kind in "fc":
            gap = float(np.max(np.abs(a - b)))
            reload_gap = max(reload_gap, gap)
            print(f"{name:<12} {output:<11} max |in-memory - reloaded| = {gap:.2g}")
        else:
            assert np.array_equal(a, b), f"{name}.{output} differs after reloading"
            print(f"{name:<12} {output:<11} identical")
record("serving.reload_max_abs_diff", reload_gap)
print("known_user for", [u.decode() for u in probe_users.numpy()], "->", servables["query_tower"].serve(probe_users)["known_user"].numpy())

# %% [markdown]
# The differences are zero (or at the level of float rounding): the graph that runs
# after reloading is the graph that ran before saving. `not-a-user` came back with
# `known_user = False`; its embedding is the out-of-vocabulary one, the same for every
# unknown id.

# %% [markdown]
# ## 8. TF Serving's model layout, versions and config
#
# TF Serving finds models on disk by convention. Each model has a **base path**, and
# each subdirectory of it whose name is a whole number is one **version** of the model,
# a complete SavedModel:
#
# ```text
# build/models/                    <- the "model base" we export into
#   models.config                  <- serves all three models (local paths)
#   models.docker.config           <- the same, with the paths seen inside Docker
#   query_tower/
#     1/  saved_model.pb  variables/  assets/  fingerprint.pb
#     2/  ...                      <- a newer export: a new version
#   ranker/1/ ...
#   retrieval/1/ ...
#   annoy/1/  movies.ann  ...      <- lesson 08: not for TF Serving, the service reads it
# ```
#
# The server polls each base path (`--file_system_poll_wait_seconds`, 1 s by default),
# loads a new version in the background, switches requests to it once it is ready and
# unloads the old one. Which versions are served is the **version policy**:
#
# * `latest { num_versions: N }` — the N highest numbers (the default, with N = 1);
# * `all {}` — every version on disk;
# * `specific { versions: 3 versions: 4 }` — exactly those, for example to pin a
#   version during an experiment or to roll back.
#
# Lesson 08's service pins the query tower to one version: its Annoy index holds
# embeddings from the candidate tower trained *with* that query tower, and a query
# embedding from another training run lives in a different space. Each export therefore
# gives all its models the same version number, and our config keeps **two** versions of
# the query tower, so that requests pinned to the old one keep working during a switch.
#
# Several models are served from one **model config file** (protobuf text): one `config`
# entry per model with its name, base path, platform and version policy.
# `export_servables` writes `models.config` (this machine's paths) and
# `models.docker.config` (paths under `/models`, as the Docker container sees them).

# %% tags=["export"]
#| export serving.export
from typing import Any

DOCKER_MODEL_BASE = "/models"
VERSIONS_KEPT = {"query_tower": 2, "ranker": 1, "retrieval": 1}
CONFIG_FILES = {"models.config": None, "models.docker.config": DOCKER_MODEL_BASE}  # None: this machine's paths


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


def parse_model_config(text: str) -> list[dict[str, Any]]:
    """A model config file read by TF Serving's own parser, as plain data, one dict per model.

    ``{"name", "base_path", "platform", "policy"}`` (``"latest"``, ``"all"``, ``"specific"``
    or ``None``), ``"versions"`` (the specific ones, or ``[num_versions]`` for latest) and
    ``"labels"`` (``{label: version}``). Raises ``ValueError`` when the text does not parse.
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(str(text), config)
    except text_format.ParseError as exc:
        raise ValueError(f"not a valid model config: {exc}") from None
    models = []
    for entry in config.model_config_list.config:
        policy = entry.model_version_policy.WhichOneof("policy_choice")
        if policy == "specific":
            versions = [int(v) for v in entry.model_version_policy.specific.versions]
        elif policy == "latest":
            versions = [int(entry.model_version_policy.latest.num_versions)]
        else:
            versions = []
        models.append({
            "name": str(entry.name),
            "base_path": str(entry.base_path),
            "platform": str(entry.model_platform),
            "policy": policy,
            "versions": versions,
            "labels": {str(k): int(v) for k, v in sorted(entry.version_labels.items())},
        })
    return models


def metadata_response(version_dir: str | Path, model_name: str, version: int) -> dict[str, Any]:
    """The JSON body TF Serving answers to ``GET /v1/models/<model>/versions/<v>/metadata`` for this SavedModel.

    Built offline from ``saved_model.pb`` with protobuf's JSON mapping as the server
    writes it: field names as in the proto (``tensor_shape``), default values printed
    (``"name": ""``, ``"unknown_rank": false``) and 64-bit sizes as strings.
    """
    from google.protobuf import json_format
    from tensorflow.python.saved_model import loader_impl
    from tensorflow_serving.apis import get_model_metadata_pb2

    saved_model = loader_impl.parse_saved_model(str(version_dir))
    signatures = get_model_metadata_pb2.SignatureDefMap()
    for name, signature in saved_model.meta_graphs[0].signature_def.items():
        signatures.signature_def[name].CopyFrom(signature)
    return {
        "model_spec": {"name": model_name, "signature_name": "", "version": str(int(version))},
        "metadata": {"signature_def": json_format.MessageToDict(
            signatures, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )},
    }


def warmup_examples(model_name: str, user_ids: Sequence[str], titles: Sequence[str]) -> list[dict[str, list[str]]]:
    """Realistic warm-up requests for one of our models: one user, a few users, and a ranker-sized batch."""
    users, first = [str(u) for u in user_ids], str(user_ids[0])
    if model_name == "ranker":
        batch = [str(t) for t in titles[:N_CANDIDATES]]
        return [{"user_id": [first], "movie_title": batch[:1]}, {"user_id": [first] * len(batch), "movie_title": batch}]
    return [{"user_id": [first]}, {"user_id": [*users[:4], "unknown-user"]}]


def export_servables(
    base: str | Path,
    *,
    retrieval_model: tf.keras.Model,
    ranking_model: tf.keras.Model,
    train: tf.data.Dataset,
    movies: tf.data.Dataset,
    version: int | None = None,
) -> dict[str, Any]:
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
    return {"base": base, "version": version, "servables": servables, "titles": titles, "vectors": vectors,
            "users": users}


# %% [markdown]
# We export a complete model base for the rest of the lesson, with the models trained in
# section 2, and look at the layout and the config file it wrote.

# %%
models_base = scratch / "model_base"
export_info = export_servables(models_base, retrieval_model=retrieval_model, ranking_model=ranking_model, train=train, movies=movies)
print("exported version", export_info["version"], "to", models_base)
print(sorted(str(p.relative_to(models_base)) for p in models_base.glob("*/*")))
print((models_base / "models.docker.config").read_text())

# %% [markdown]
# ### Starting TF Serving with Docker
#
# The `tensorflow/serving` image runs `tensorflow_model_server` with gRPC on port 8500
# and REST on port 8501; anything after the image name is passed to the server. From the
# repository root, after `python -m movierec.api export` has written `build/models`:
#
# ```bash
# docker run --rm --name movierec-tfserving \
#   -p 127.0.0.1:8500:8500 -p 127.0.0.1:8501:8501 \
#   -v /full/path/to/build/models:/models:ro \
#   tensorflow/serving:2.21.0 \
#   --model_config_file=/models/models.docker.config \
#   --model_config_file_poll_wait_seconds=60
# ```
#
# With your checkout's full path in the `-v` option, the mount makes `build/models` appear
# as `/models` in the container (hence the Docker config's paths);
# `--model_config_file_poll_wait_seconds` re-reads the config every minute, so labels
# and models change without a restart.
#
# ### Starting TF Serving in Colab
#
# Colab has no Docker, but you are root on Ubuntu, and TF Serving publishes an apt package:
#
# ```bash
# !curl -fsSL https://storage.googleapis.com/tensorflow-serving-apt/tensorflow-serving.release.pub.gpg \
#     | gpg --dearmor --yes -o /usr/share/keyrings/tensorflow-serving.gpg
# !echo "deb [arch=amd64 signed-by=/usr/share/keyrings/tensorflow-serving.gpg] http://storage.googleapis.com/tensorflow-serving-apt stable tensorflow-model-server tensorflow-model-server-universal" \
#     > /etc/apt/sources.list.d/tensorflow-serving.list
# !apt-get update -qq && apt-get install -y -qq tensorflow-model-server
# !tensorflow_model_server --version
# ```
#
# Then start it in the background (a cell must not block):
#
# ```bash
# !python -m movierec.api export --out /content/models
# !nohup tensorflow_model_server --port=8500 --rest_api_port=8501 \
#     --model_config_file=/content/models/models.config > /content/tfserving.log 2>&1 &
# !sleep 10 && tail -n 5 /content/tfserving.log
# ```
#
# `model_server`, imported below, does the same from Python; the end of section 11 uses
# it when `tensorflow_model_server` is installed and otherwise says why it did nothing.

# %%
from movierec.serving.launch import free_port, model_server

# %% [markdown]
# `movierec.serving.launch` is hand-written infrastructure, not something to study line by
# line: `model_server(config_path)` starts `tensorflow_model_server` on two free loopback
# ports (`free_port` asks the operating system for one), polls `GET /v1/models/<name>` until
# every model in the config reports an `AVAILABLE` version, yields the REST and gRPC
# addresses, and stops the server when the `with` block ends; if the binary is missing it
# raises `FileNotFoundError` instead of pretending. `api_server`, used in lesson 08, does
# the same for the recommendation service.

# %% [markdown]
# ### Labels, and pinning a version
#
# A **label** names a version in the config: `version_labels { key: "stable" value: 3 }`.
# A client asking for `/v1/models/ranker/labels/stable` (REST) or setting
# `model_spec.version_label` (gRPC) gets version 3 until an operator moves the label in
# the config file. A canary rollout: serve 3 and 4 with `specific`, label them `stable`
# and `canary`, send a slice of traffic to `canary`, then move `stable` to 4. TF Serving
# refuses a label that points to a version it does not serve.
#
# ### Exercise 2 (2 points): a config that pins versions and labels them
#
# Write `pinned_model_config(name, base_path, versions, labels)`: the text of a
# `model_config_list` with **one** model that serves exactly `versions` (a `specific`
# policy) and carries `labels`, a dict `{label: version}`. Raise `ValueError` when
# `versions` is empty, a version is not a positive integer, or a label points to a version
# not in `versions`.
#
# **Hint:** the format is protobuf text, as in `models.config` above; one `versions: N`
# line per version inside `specific { ... }`, and one `version_labels { key: "..." value: N }`
# entry per label. The TF Serving configuration guide shows both (References).

# %% nbgrader={"grade": false, "grade_id": "pinned_model_config", "locked": false, "schema_version": 3, "solution": true}
def pinned_model_config(name: str, base_path: str, versions, labels=None) -> str:
    """A TF Serving ``model_config_list`` (protobuf text) serving exactly ``versions`` of one model.

    Args:
        name: the model's name, as clients will ask for it.
        base_path: the directory that holds the model's numbered version directories.
        versions: the versions to serve, positive integers (at least one).
        labels: ``{label: version}``, each version one of ``versions``; ``None`` for none.

    Returns:
        Text that parses as a ``tensorflow_serving.config.ModelServerConfig``: one config
        entry with ``name``, ``base_path``, ``model_platform: "tensorflow"``, a ``specific``
        version policy listing ``versions``, and one ``version_labels`` entry per label.

    Raises:
        ValueError: ``versions`` is empty, holds something that is not a positive integer,
            or a label points to a version that is not served.
    """
    ### BEGIN SOLUTION
    versions = list(versions)
    if not versions:
        raise ValueError("serve at least one version")
    for version in versions:
        if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1:
            raise ValueError(f"versions are positive integers, got {version!r}")
    labels = dict(labels or {})
    unserved = {label: v for label, v in labels.items() if v not in versions}
    if unserved:
        raise ValueError(f"labels must point to served versions {versions}, got {unserved}")
    policy = " ".join(f"versions: {int(v)}" for v in versions)
    lines = [
        "model_config_list {",
        "  config {",
        f'    name: "{name}"',
        f'    base_path: "{base_path}"',
        '    model_platform: "tensorflow"',
        f"    model_version_policy {{ specific {{ {policy} }} }}",
    ]
    lines += [f'    version_labels {{ key: "{label}" value: {int(v)} }}' for label, v in labels.items()]
    return "\n".join(lines + ["  }", "}"]) + "\n"
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_pinned_model_config", "locked": true, "points": 2, "schema_version": 3, "solution": false}
from movierec.checks import ints as _ints
from movierec.serving.export import parse_model_config

_text = pinned_model_config("ranker", "/models/ranker", [3, 4], {"stable": 3, "canary": 4})
assert isinstance(_text, str), f"return the config as text, got {type(_text).__name__}"
_plain = parse_model_config(_text)  # TF Serving's own parser, reduced to plain data
assert len(_plain) == 1, "the config should hold exactly one model"
assert _plain[0]["name"] == "ranker", "the model's name"
assert _plain[0]["base_path"] == "/models/ranker", "the model's base path"
assert _plain[0]["platform"] == "tensorflow", "model_platform must be \"tensorflow\""
assert _plain[0]["policy"] == "specific", "pinning versions needs the 'specific' version policy"
assert sorted(_ints(_plain[0]["versions"])) == [3, 4], "the policy should list exactly the versions to serve"
assert _plain[0]["labels"] == {"canary": 4, "stable": 3}, "one version_labels entry per label, key = label, value = version"
try:
    pinned_model_config("ranker", "/models/ranker", [3], {"stable": 4})
except ValueError:
    pass
else:
    raise AssertionError("a label that points to a version not served must raise ValueError")
print("pinned_model_config: visible tests passed")
### BEGIN HIDDEN TESTS
_one = parse_model_config(pinned_model_config("query_tower", "/srv/m/query_tower", [7]))
assert _one[0]["versions"] == [7], "a single pinned version"
assert _one[0]["labels"] == {}, "no labels when labels is None"
assert _one[0]["name"] == "query_tower", "use the given name"
for _bad in ([], [0], [-2], [1.5], ["3"]):
    try:
        pinned_model_config("ranker", "/models/ranker", _bad)
    except ValueError:
        pass
    else:
        raise AssertionError(f"versions={_bad!r} must raise ValueError")
_np = parse_model_config(pinned_model_config("ranker", "/m/ranker", np.array([2, 5]), {"old": 2}))
assert sorted(_np[0]["versions"]) == [2, 5], "NumPy integers are versions too"
### END HIDDEN TESTS

# %% [markdown]
# ## 9. Warm-up: the first request should not pay for loading
#
# A freshly loaded SavedModel is slow on its first calls (tables, memory and kernels are
# set up lazily), and after a version switch under load *every* client meets that spike
# at once. TF Serving's cure is the **warm-up file**,
# `<version>/assets.extra/tf_serving_warmup_requests`: a TFRecord file of serialized
# `PredictionLog`s, each holding one `PredictRequest`. The server replays them (up to
# 1,000) before it marks the version `AVAILABLE`.
#
# `save_servable` writes the file before renaming the version into place, and
# `export_servables` gives each model a few realistic requests (a known and an unknown
# user; for the ranker, a batch of 100 titles). Lesson 08's in-process backend does what
# TF Serving does with them: `replay_warmup`. The ranker's file, replayed:

# %%
from movierec.serving.export import WARMUP_PATH, replay_warmup

ranker_dir = models_base / "ranker" / str(export_info["version"])
print("warm-up file:", (ranker_dir / WARMUP_PATH).relative_to(models_base), f"({(ranker_dir / WARMUP_PATH).stat().st_size:,} bytes)")
ranker_signature = tf.saved_model.load(str(ranker_dir)).signatures["serving_default"]
started = time.perf_counter()
replayed = replay_warmup(ranker_dir, ranker_signature)
print(f"replayed {replayed} warm-up requests in {1000 * (time.perf_counter() - started):.0f} ms")

# %% [markdown]
# ## 10. Calling TF Serving over REST
#
# TF Serving always listens for gRPC (`--port`, 8500 by convention). **REST is off unless
# you start the server with `--rest_api_port`** (8501 by convention; the Docker image
# sets both). REST speaks JSON:
#
# | request | what it does |
# | --- | --- |
# | `GET /v1/models/M` | the state of each loaded version (`LOADING`, `AVAILABLE`, ...) |
# | `GET /v1/models/M/versions/V` or `/labels/L` | the state of one version |
# | `GET /v1/models/M[/versions/V]/metadata` | the model's signatures: names, dtypes, shapes |
# | `POST /v1/models/M[/versions/V or /labels/L]:predict` | a prediction |
#
# A predict body comes in one of two formats:
#
# * **row format**, `{"signature_name": ..., "instances": [...]}`: one entry per example;
#   with several inputs each entry is an object `{input name: value}`. The answer is
#   `{"predictions": [...]}`, one entry per example — a bare value when the signature has
#   a single output, an object `{output name: value}` otherwise.
# * **columnar format**, `{"signature_name": ..., "inputs": {name: [values...]}}`: one list
#   per input, all of the same length. The answer is `{"outputs": ...}` — the bare list
#   for a single output, an object of lists otherwise.
#
# The columnar format is shorter for one user and 100 titles; our clients use it.
# Non-UTF-8 bytes travel as `{"b64": "..."}`. Errors — an unknown model, version or label
# (404), inputs that do not match the signature (400) — come as `{"error": "a message"}`,
# which a client must surface rather than crash on a missing key.
#
# ### The metadata endpoint
#
# `GET /v1/models/ranker/metadata` answers with the model's `SignatureDef`s as JSON: for
# each signature, its inputs and outputs with the tensor's graph name, its dtype as a
# TensorFlow enum name (`DT_STRING`, `DT_FLOAT`) and its shape as a list of dimensions
# whose sizes are JSON *strings* (`"-1"` for "any"), as protobuf's JSON mapping writes
# 64-bit integers. A deployment script reads it to check that the server runs the contract
# its clients expect. `metadata_response` (library code) builds, from a SavedModel on
# disk, the body TF Serving's REST guide documents for it; here is the ranker's, shortened:

# %%
from movierec.serving.export import metadata_response

ranker_metadata = metadata_response(ranker_dir, "ranker", export_info["version"])
print(json.dumps(ranker_metadata["model_spec"]))
print(json.dumps(ranker_metadata["metadata"]["signature_def"]["signature_def"]["serving_default"], indent=1)[:900])
print("signatures:", sorted(ranker_metadata["metadata"]["signature_def"]["signature_def"]))

# %% [markdown]
# Note the second signature, `__saved_model_init_op`: TensorFlow's own initialisation
# (it fills the lookup tables), listed by the server but not for clients to call.
#
# ### Exercise 3 (2 points): read a signature from a metadata response
#
# Write `signature_from_metadata(body, signature_name)`, which turns a decoded metadata
# response into the plain form `describe_signatures` gives (section 7):
# `{"inputs": {name: (dtype, shape)}, "outputs": {name: (dtype, shape)}}`, where `dtype`
# is TensorFlow's short name (`"string"`, `"float32"`, `"bool"`) and `shape` a tuple with
# `None` for every dimension of unknown size. Raise `KeyError` when the model has no
# signature of that name.
#
# **Hint:** `tf.dtypes.as_dtype` accepts the enum's number, and
# `types_pb2.DataType.Value("DT_FLOAT")` (from `tensorflow.core.framework`) gives the
# number for a name. Sizes arrive as strings.

# %% nbgrader={"grade": false, "grade_id": "signature_from_metadata", "locked": false, "schema_version": 3, "solution": true}
def signature_from_metadata(body: dict, signature_name: str = "serving_default") -> dict:
    """One signature of a TF Serving metadata response, as plain names, dtypes and shapes.

    Args:
        body: the decoded JSON of ``GET /v1/models/<model>/metadata``.
        signature_name: the signature to read.

    Returns:
        ``{"inputs": {name: (dtype, shape)}, "outputs": {name: (dtype, shape)}}`` with
        ``dtype`` a TensorFlow dtype name such as ``"float32"`` and ``shape`` a tuple of
        ints, ``None`` where the size is unknown (``-1``).

    Raises:
        KeyError: the response has no signature called ``signature_name``.
    """
    ### BEGIN SOLUTION
    from tensorflow.core.framework import types_pb2

    signatures = body["metadata"]["signature_def"]["signature_def"]
    if signature_name not in signatures:
        raise KeyError(f"no signature {signature_name!r}; the model has {sorted(signatures)}")

    def plain(tensors: dict) -> dict:
        out = {}
        for name, info in tensors.items():
            dtype = tf.dtypes.as_dtype(types_pb2.DataType.Value(info["dtype"])).name
            dims = info.get("tensor_shape", {}).get("dim", [])
            out[name] = (dtype, tuple(None if int(d["size"]) < 0 else int(d["size"]) for d in dims))
        return out

    signature = signatures[signature_name]
    return {"inputs": plain(signature.get("inputs", {})), "outputs": plain(signature.get("outputs", {}))}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_signature_from_metadata", "locked": true, "points": 2, "schema_version": 3, "solution": false}
from movierec.checks import plain_value as _plain_value


def _plain_signature(signature):  # exact str, int and None (shapes as lists): no lookalike compares by its own rules
    return _plain_value({
        str(side): {str(k): [str(d), [n if n is None else int(n) for n in s]] for k, (d, s) in signature[side].items()}
        for side in ("inputs", "outputs")
    })


_body = json.loads(json.dumps(metadata_response(ranker_dir, "ranker", 1)))
_got = signature_from_metadata(_body)
_want = _plain_value(describe_signatures(ranker_dir)["serving_default"])
assert set(_got) == {"inputs", "outputs"}, f"expected the keys 'inputs' and 'outputs', got {sorted(_got)}"
assert sorted(map(str, _got["inputs"])) == ["movie_title", "user_id"], f"the ranker's inputs are movie_title and user_id, got {sorted(_got['inputs'])}"
assert _plain_signature(_got)["inputs"]["user_id"][0] == "string", f"DT_STRING is the dtype 'string', got {_got['inputs']['user_id'][0]!r}"
assert _plain_signature(_got)["outputs"]["score"][0] == "float32", f"DT_FLOAT is the dtype 'float32', got {_got['outputs']['score'][0]!r}"
assert _plain_signature(_got)["outputs"]["score"][1] == [None], f"a size of -1 is unknown: None; got {_got['outputs']['score'][1]!r}"
assert _plain_signature(_got) == _want, "every input and output as describe_signatures reports it"
try:
    signature_from_metadata(_body, "predict")
except KeyError:
    pass
else:
    raise AssertionError("a signature the model does not have must raise KeyError")
print("signature_from_metadata: visible tests passed")
### BEGIN HIDDEN TESTS
_qdir = models_base / "query_tower" / str(export_info["version"])
_qgot = signature_from_metadata(json.loads(json.dumps(metadata_response(_qdir, "query_tower", 1))), "serving_default")
_qwant = _plain_value(describe_signatures(_qdir)["serving_default"])
assert _plain_signature(_qgot) == _qwant, "the query tower's outputs: float32 (None, d) and bool (None,)"
assert all(type(n) is int for _, s in _qgot["outputs"].values() for n in s if n is not None), "known sizes are ints, not strings"
_fake = {"metadata": {"signature_def": {"signature_def": {
    "other": {"inputs": {"x": {"dtype": "DT_INT64", "tensor_shape": {"dim": [{"size": "-1"}, {"size": "3"}]}}}, "outputs": {}},
    "serving_default": {"inputs": {"y": {"dtype": "DT_DOUBLE", "tensor_shape": {"dim": [{"size": "2"}]}}}, "outputs": {}},
}}}}
assert _plain_signature(signature_from_metadata(_fake, "other")) == {"inputs": {"x": ["int64", [None, 3]]}, "outputs": {}}, "read the signature asked for"
assert _plain_signature(signature_from_metadata(_fake)) == {"inputs": {"y": ["float64", [2]]}, "outputs": {}}, "the default is serving_default, whatever the order"
### END HIDDEN TESTS

# %% [markdown]
# ### A REST client with timeouts
#
# `TFServingRestClient.predict` (library code) sends the columnar format, checks the
# status, and turns every failure into one of two exceptions: `ServingUnavailable`
# (nothing answered within the timeout; lesson 08's service answers 503) and
# `ServingError` (TF Serving answered with an error; the service answers 502). Timeouts
# are not optional: without one, a stalled server holds every worker thread of its
# clients. Each thread keeps its own `requests.Session`, reusing connections.

# %% tags=["export"]
#| export serving.clients
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import requests


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


# %% [markdown]
# Here is the columnar request the API sends to rank three titles for user 42, and the
# failure a client sees when no server listens: a `ServingUnavailable` with a clear
# message, after at most the timeout — not a hang, not a stack trace from deep inside
# `urllib3`.

# %%
print(json.dumps(columnar_request({"user_id": [b"42"] * 3, "movie_title": [b"Fargo (1996)", b"Heat (1995)", b"Toy Story (1995)"]})))
nobody = TFServingRestClient(f"http://127.0.0.1:{free_port()}", timeout_s=1.0)
try:
    nobody.predict("ranker", {"user_id": ["42"], "movie_title": ["Fargo (1996)"]}, ["score"])
except ServingUnavailable as exc:
    print("ServingUnavailable:", exc)

# %% [markdown]
# ## 11. Calling TF Serving over gRPC
#
# TF Serving's other front door is gRPC (port 8500). A `PredictRequest` (package
# `tensorflow-serving-api`) names the model in `model_spec` (optionally a `version` or a
# `version_label`, and the `signature_name`) and maps each input to a `TensorProto`
# (`tf.make_tensor_proto`); `PredictionServiceStub(channel).Predict(request, timeout=...)`
# returns a `PredictResponse` whose `outputs` `tf.make_ndarray` turns back into arrays.
# gRPC sends tensors in binary over one HTTP/2 connection: faster for large numeric
# inputs, about the same for a few strings. A `grpc.RpcError` with `UNAVAILABLE` or
# `DEADLINE_EXCEEDED` becomes `ServingUnavailable`; any other code, `ServingError`.

# %% tags=["export"]
#| export serving.clients
from collections.abc import Callable

import grpc
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)


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


# %% [markdown]
# The request for the same three titles, as TF Serving receives it (each `TensorProto`
# carries its dtype, its shape and the values), and a call to a port where nothing
# listens:

# %%
grpc_request = grpc_predict_request("ranker", {"user_id": [b"42"] * 3, "movie_title": [b"Fargo (1996)", b"Heat (1995)", b"Toy Story (1995)"]}, version=1)
print(grpc_request)
nobody_grpc = TFServingGrpcClient(f"127.0.0.1:{free_port()}", timeout_s=1.0)
try:
    nobody_grpc.predict("ranker", {"user_id": ["42"], "movie_title": ["Fargo (1996)"]})
except ServingUnavailable as exc:
    print("ServingUnavailable:", exc)
nobody_grpc.close()

# %% [markdown]
# ### With a real TF Serving
#
# When `tensorflow_model_server` is installed (in Colab after the commands of section 8),
# this cell starts it on the model base we exported, calls all three models over both
# protocols, and checks that TF Serving answers like the in-process models. Elsewhere it
# prints why it did nothing.

# %%
if shutil.which("tensorflow_model_server"):
    local_models = {name: tf.saved_model.load(str(models_base / name / "1")).signatures["serving_default"] for name in SERVED_MODELS}
    with model_server(models_base / "models.config") as urls:
        rest_client, grpc_client = TFServingRestClient(urls["rest"]), TFServingGrpcClient(urls["grpc"])
        for name, inputs in {"query_tower": {"user_id": probe_users}, "ranker": {"user_id": probe_users, "movie_title": probe_titles}}.items():
            names = list(SIGNATURES[name]["outputs"])
            expected = {key: value.numpy() for key, value in local_models[name](**inputs).items()}
            for label, answer in (("REST", rest_client.predict(name, inputs, names)), ("gRPC", grpc_client.predict(name, inputs, names))):
                for key in names:
                    if expected[key].dtype.kind == "f":
                        np.testing.assert_allclose(answer[key], expected[key], rtol=1e-5, atol=1e-6)
                    else:
                        assert np.array_equal(answer[key], expected[key]), f"{label} {name}.{key} differs"
                print(f"{label:<5} {name:<12} answers like the in-process model; versions {rest_client.model_versions(name)}")
        grpc_client.close()
else:
    print("tensorflow_model_server is not installed on this machine: skipping the live TF Serving calls.")
    print("Install it (section 8) or run the Docker image, then rerun this cell.")

# %% [markdown]
# ## 12. Batching
#
# A model call costs almost the same for one row as for 64, so a server under load should
# merge concurrent requests into one batch. TF Serving does this when started with
# `--enable_batching` and a `--batching_parameters_file` such as
#
# ```text
# max_batch_size { value: 128 }          # rows per merged batch
# batch_timeout_micros { value: 2000 }   # wait at most 2 ms to fill a batch
# num_batch_threads { value: 2 }         # batches processed in parallel (about one per core)
# max_enqueued_batches { value: 100 }    # queue bound: beyond it, requests are rejected
# ```
#
# The timeout is the price: every request may wait up to 2 ms for company. Batching pays
# off when requests arrive faster than the model answers them one by one, and on
# accelerators, where a batch of 128 costs little more than a batch of 1.
# `allowed_batch_sizes` (with `pad_variable_length_inputs`) limits batches to a few sizes,
# so the server runs a few shapes instead of every possible one. Our ranker already
# receives batches — 100 titles per request — so merging requests helps it less than it
# helps a model called one row at a time; measure before you turn it on (lesson 08 shows
# how).
#
# ## Summary
#
# * Export through a `tf.Module` with an explicit `input_signature`, named inputs and a
#   dict of named outputs; put the id-to-feature lookups inside the graph.
# * Inspect signatures (`saved_model_cli`, `describe_signatures`, or the server's metadata
#   endpoint) and check that reloaded models answer like the in-memory ones.
# * TF Serving serves `<base>/<model>/<version>/`, loads new versions as they appear,
#   follows a version policy (`latest`, `all`, `specific`), and maps labels to versions;
#   one config file serves many models. Use the release that matches your TensorFlow.
# * Warm-up records in `assets.extra/tf_serving_warmup_requests` are replayed before a
#   version takes traffic, so no client pays for the first calls.
# * Clients: REST (off unless `--rest_api_port`; rows or columns; `/metadata`; errors as
#   `{"error": ...}`) and gRPC (`PredictRequest` → `PredictResponse`), both with timeouts.
# * Batching trades a bounded wait for throughput.
#
# Lesson 08 builds the recommendation service on these servables: the Annoy index, the
# seen filter, the fallback, and the latency it achieves.
#
# ## References
#
# * C. Olston, N. Fiedel, K. Gorovoy, J. Harmsen, L. Lao, F. Li, V. Rajashekhar,
#   S. Ramesh, J. Soyke (2017). *TensorFlow-Serving: Flexible, High-Performance ML
#   Serving.* Workshop on ML Systems at NIPS 2017. <https://arxiv.org/abs/1712.06139>
# * TensorFlow guide: *Using the SavedModel format* (signatures, `saved_model_cli`).
#   <https://www.tensorflow.org/guide/saved_model>
# * TensorFlow Serving: *RESTful API* (request and response formats, metadata, errors).
#   <https://www.tensorflow.org/tfx/serving/api_rest>
# * TensorFlow Serving: *TensorFlow Serving with Docker*.
#   <https://www.tensorflow.org/tfx/serving/docker>
# * TensorFlow Serving: *Installation* (the `tensorflow-model-server` apt package).
#   <https://www.tensorflow.org/tfx/serving/setup>
# * TensorFlow Serving: *Serving Configuration* (model config file, version policies
#   and labels). <https://www.tensorflow.org/tfx/serving/serving_config>
# * TensorFlow Serving: *SavedModel Warmup*.
#   <https://www.tensorflow.org/tfx/serving/saved_model_warmup>
# * TensorFlow Serving: *Batching guide* (batching parameters).
#   <https://github.com/tensorflow/serving/blob/master/tensorflow_serving/batching/README.md>
# * TensorFlow Serving: the gRPC API definitions (`predict.proto`,
#   `prediction_service.proto`, `prediction_log.proto`). <https://github.com/tensorflow/serving/tree/master/tensorflow_serving/apis>
# * TensorFlow Recommenders: `tfrs.layers.factorized_top_k.BruteForce`.
#   <https://www.tensorflow.org/recommenders/api_docs/python/tfrs/layers/factorized_top_k/BruteForce>
# * Feast: *What is Feast?* (a feature store: request-time features and point-in-time
#   correct training data). <https://docs.feast.dev/>
