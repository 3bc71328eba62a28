# %% [markdown]
# # Lesson 07 — TensorFlow Serving
#
# Before other programs can use the models of lessons 04 and 05 they must become
# **servables**: SavedModels with a published contract, laid out so that a model server
# can load them, switch versions without downtime and answer over the network. You will
# export the query tower, the ranker and an exact-retrieval model with named signatures
# that take raw strings (meeting two traps), check them, lay them out with **versions**,
# a **model config**, **labels** and **warm-up records**, and call **TensorFlow Serving**
# over **REST** and **gRPC**, with **batching**. Lesson 08 builds the service on top.
#
# **Time:** about 2 hours (three exercises, 30 minutes of reading the text and the code, one run of the lesson).
#
# The cells tagged `export` become `movierec.serving.export` (servables, layout, config)
# and `movierec.serving.clients` (request formats). Plumbing you need not write lives in
# hand-written modules, each shown by an import and a paragraph.

# %% tags=["setup"]
from movierec.setup import setup_lesson

setup_lesson()

# %%
import json
import logging
import shutil
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
# Every save logs "Assets written to ..."; errors only keep the output readable (logging.INFO shows all).
logging.getLogger("tensorflow").setLevel(logging.ERROR)
print("quick mode:", QUICK, "| scratch directory:", scratch)


# %% [markdown]
# ## 1. What TensorFlow Serving does
#
# TF Serving is a C++ server that loads SavedModels and answers over gRPC (port 8500)
# and, if asked, REST (port 8501). It watches a directory per model, loads each new
# **version** in the background and switches traffic to it when ready, so a deployment is
# "copy a new numbered directory"; it **batches** concurrent requests when told to, and
# describes its models (Olston et al., 2017). Three ideas carry the lesson: an exported
# model is a program with a **contract** (its signature); clients send **raw values**,
# because lookups travel inside the model; and deployment is **configuration**.
#
# **Which release?** A server runs only the operations its TensorFlow knows: use the TF
# Serving release numbered like the `tf.__version__` that exported the models, or newer.
# This course pins TensorFlow `2.21`, so TF Serving `2.21` (image `tensorflow/serving:2.21.0`
# or the `tensorflow-model-server` apt package) and `tensorflow-serving-api` `2.21`; in
# Colab, match Colab's `tf.__version__`.
#
# ## 2. The models we will serve
#
# We train lesson 04's feature-rich two-tower model (3 epochs) and lesson 05's ranker
# (early stopping) on the course's seeded split; in quick mode (`COURSE_QUICK=1`, the
# tests) each gets one epoch, which recommends worse but serves the same. The cell is
# library code: the command that exports the API's models calls it too.

# %% tags=["export"]
#| export serving.export
import tensorflow as tf


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


# %%
from movierec.dataset import load_movies
from movierec.retrieval import read_train_test

movies = load_movies()
train, _ = read_train_test()  # columns, read once (lesson 04); nothing is tuned here: train on all 80,000
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
# TensorFlow saves **traced functions** (graphs recorded when a `tf.function` runs), not
# Python. A **signature** is such a graph published under a name, with named inputs and
# outputs; a server uses `serving_default` when a request names none.
#
# ### Trap 1: an index saved before it was called has no signature
#
# Saved without a list of signatures, a Keras layer publishes what it has *already
# traced*. A TFRS `BruteForce` layer indexed but never called saves with only a logged
# warning and loads back with **no signature at all**:

# %%
from movierec.retrieval import candidate_embeddings

catalogue_titles, catalogue_vectors = candidate_embeddings(retrieval_model, movies)
print("catalogue:", catalogue_vectors.shape, "embeddings for", len(catalogue_titles), "titles")

naive_index = tfrs.layers.factorized_top_k.BruteForce(k=10)
naive_index.index(candidates=tf.constant(catalogue_vectors), identifiers=tf.constant(catalogue_titles))
tf.saved_model.save(naive_index, str(scratch / "trap1_never_called"))
print("signatures after saving an uncalled layer:", list(tf.saved_model.load(str(scratch / "trap1_never_called")).signatures))

# %% [markdown]
# An empty list: TF Serving would load this model and answer every request with
# "signature `serving_default` not found".
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
# `input_1`, `output_1`, `output_2`: names made up from positions. Return the identifiers
# first and every client reading `output_1` silently gets the other tensor; and this
# signature takes *embeddings*, so a client would have to run the query tower itself.
#
# The cure for both: **wrap what you export in a `tf.Module` whose serving method is a
# `tf.function` with an explicit `input_signature`**, name each input in its
# `tf.TensorSpec(..., name=...)`, return a dict keyed by output name, and pass the method
# to `tf.saved_model.save(..., signatures=...)`. It is traced at save time, with your names.
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
_user_ids = np.unique(train["user_id"][:2_000].numpy())
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
# The towers and ranker take dicts of raw features (age, occupation, zip code, time,
# genres), but a client knows only a user id and a title. So the exported models carry
# **lookup tables** built from the training data — user id → profile and the time of the
# user's latest rating (the "now" we serve them at); title → movie id and genres — as
# `tf.lookup.StaticHashTable`s, saved with the model like variables, so the lookups run
# inside the graph, in TF Serving too. The hand-written `movierec.serving.features`
# builds them: `user_feature_table` (one row per user), `movie_feature_table` (one row per
# title, genres as text such as `"4 7"`) and `FeatureLookup`, the tables. An unknown user
# gets each feature's most common value, and a `known_user` output says so.
#
# !!! warning "Two simplifications, and what production does instead"
#     Frozen into the SavedModel, **profiles are frozen** (a user who changes, or signs
#     up, after the export is served the old row, or as a stranger) and **"now" is
#     stale** (the model learnt from features at each rating's time: *training/serving
#     skew*); lesson 08's rated movies are frozen too. In production the service looks
#     features up **at request time** in a **feature store** (such as Feast) that
#     streaming jobs keep current, and the model takes features, not tables.

# %%
from movierec.serving.features import FeatureLookup, movie_feature_table, user_feature_table

# %% [markdown]
# ## 6. Three servables with explicit signatures
#
# Each export is a `tf.Module` — a **servable** — holding the Keras model and the lookup
# tables, with one `serve` method and an explicit signature. `None` is the batch
# dimension, `d` the embedding size, `k` the titles exact retrieval returns (100).
#
# | model | inputs | outputs |
# | --- | --- | --- |
# | `query_tower` | `user_id`: string `(None,)` | `embedding`: float32 `(None, d)`; `known_user`: bool `(None,)` |
# | `ranker` | `user_id`, `movie_title`: string `(None,)` | `score`: float32 `(None,)`, the predicted rating, not clipped |
# | `retrieval` | `user_id`: string `(None,)` | `titles`: string `(None, k)`; `scores`: float32 `(None, k)`; `known_user`: bool `(None,)` |
#
# `retrieval` wraps `BruteForce` over one row per title (`distinct_titles`, in `features`),
# traced at save time: the reference for lesson 08's Annoy recall. `MovieRanker` clips to
# 1–5 stars, right for RMSE but wrong for ordering (all predictions above 5 would tie), so
# `unclipped_rating` gives the raw score (`check_unclipped`, hand-written, verifies it).
#
# The ranker's servable does less per request than the Keras model. Each block of lesson
# 05's encoder reads the user's features or the title's, and the tables fix both per id, so
# `encoder_rows` (in `features`) computes the user half once per known user and the title
# half once per title, plus a row for unknown ids. A request gathers two rows per pair and
# runs only `MovieRanker.interaction`: same scores, two lookups instead of one per feature.

# %% tags=["export"]
#| export serving.export
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow_recommenders as tfrs

from movierec.serving.features import FeatureLookup, distinct_titles, encoder_rows, row_table

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

# %% [markdown]
# We save each servable as version 1 of its model directory (section 8) with
# `save_servable` from `movierec.serving.modelbase`, the hand-written model-base plumbing
# used through the lesson: it writes a hidden sibling directory and renames it into place
# when complete, since TF Serving may load a version directory the moment it appears.

# %%
from movierec.serving.modelbase import check_signature, describe_signatures, save_servable

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
print(*sorted(str(path.relative_to(export_base)) for path in export_base.rglob("*") if path.is_file()), sep="\n")

# %% [markdown]
# ## 7. Inspecting signatures, and checking the reloaded models
#
# Before handing a model to a server, look at what you exported: `saved_model_cli show
# --dir PATH --all` lists every signature's inputs and outputs. Here it is on the ranker's
# `serving_default` (`-1` is the batch dimension):

# %%
cli = shutil.which("saved_model_cli") or str(Path(sys.executable).with_name("saved_model_cli"))
shown = subprocess.run(
    [cli, "show", "--dir", str(export_base / "ranker" / "1"), "--tag_set", "serve", "--signature_def", "serving_default"],
    capture_output=True, text=True, check=False,
)
print(shown.stdout or shown.stderr[-2000:])

# %% [markdown]
# In Python, `describe_signatures` (imported above) reads a signature's
# `structured_input_signature` and `structured_outputs` as plain names, dtypes and shapes;
# `check_signature` (also from `modelbase`) compares them with section 6's contract and
# returns what it checked, so a deployment can refuse a broken export.

# %%
for name in SERVED_MODELS:
    print(name, check_signature(export_base / name / "1", SIGNATURES[name]))

# %% [markdown]
# The check that matters most: **does the reloaded model answer like the one in memory?**
# A missing asset, a layer that differs at inference or a lookup default can break an
# export invisibly. We send the same users (and an unknown id) to both and compare.

# %%
probe_users = tf.constant([b"42", b"1", b"943", b"not-a-user"])
probe_titles = tf.constant([b"Star Wars (1977)", b"Fargo (1996)", b"Toy Story (1995)", b"Star Wars (1977)"])
probe_inputs = {"query_tower": {"user_id": probe_users}, "retrieval": {"user_id": probe_users}}
probe_inputs["ranker"] = {"user_id": probe_users, "movie_title": probe_titles}
reload_gap = 0.0
for name, servable in servables.items():
    in_memory = servable.serve(**probe_inputs[name])
    reloaded = tf.saved_model.load(str(export_base / name / "1")).signatures["serving_default"](**probe_inputs[name])
    for output, value in in_memory.items():
        a, b = value.numpy(), reloaded[output].numpy()
        if a.dtype.kind in "fc":
            reload_gap = max(reload_gap, float(np.max(np.abs(a - b))))
        else:
            assert np.array_equal(a, b), f"{name}.{output} differs after reloading"
    print(f"{name:<12} outputs {sorted(in_memory)} match after reloading")
record("serving.reload_max_abs_diff", reload_gap)
print("known_user for", [u.decode() for u in probe_users.numpy()], "->", servables["query_tower"].serve(probe_users)["known_user"].numpy())

# %% [markdown]
# The largest difference is zero, or float rounding; `not-a-user` came back with
# `known_user = False`.
#
# ## 8. TF Serving's model layout, versions and config
#
# Each model has a **base path**; each subdirectory named by a whole number is one
# **version**, a complete SavedModel:
#
# ```text
# build/models/   models.config  models.docker.config     <- the "model base"
#   query_tower/1/  saved_model.pb variables/ assets/     <- version 1
#   query_tower/2/  ...                                   <- a newer export
#   ranker/1/  retrieval/1/  annoy/1/ (lesson 08, read by the service)
# ```
#
# The server polls each base path, loads a new version in the background and switches to
# it when ready. The **version policy** says which are served: `latest { num_versions: N }`
# (the default, N = 1), `all {}`, or `specific { versions: 3 versions: 4 }` — to pin a
# version during an experiment or to roll back. Lesson 08 pins the query tower to its
# Annoy index's version (a query embedding from another training run lives in a
# different space), so each export numbers all its models alike, and our config keeps
# **two** query-tower versions, so pinned requests survive a switch.
#
# A **model config file** (protobuf text) has one `config` entry per model: name, base
# path, platform, policy. `export_servables` saves a new version of all three models
# (`next_version`, from `modelbase`, picks the number), each with a warm-up file (section
# 9), and writes `models.config` (local paths) and `models.docker.config` (under `/models`).

# %% tags=["export"]
#| export serving.export
from pathlib import Path
from typing import Any

from movierec.serving.features import movie_feature_table, user_feature_table
from movierec.serving.modelbase import check_unclipped, next_version, save_servable

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


# %%
models_base = scratch / "model_base"
export_info = export_servables(models_base, retrieval_model=retrieval_model, ranking_model=ranking_model, train=train, movies=movies)
print("exported version", export_info["version"], "to", models_base)
print(sorted(str(p.relative_to(models_base)) for p in models_base.glob("*/*")))
print((models_base / "models.docker.config").read_text())

# %% [markdown]
# ### Starting TF Serving
#
# With Docker, run the `tensorflow/serving:2.21.0` image with ports 8500 and 8501
# published, `-v /full/path/to/build/models:/models:ro`, and the arguments
# `--model_config_file=/models/models.docker.config --model_config_file_poll_wait_seconds=60`
# (the config is then re-read every minute, so labels change without a restart). In Colab
# (no Docker, but root on Ubuntu), install the apt package and start the server in the
# background:
#
# ```bash
# !curl -fsSL https://storage.googleapis.com/tensorflow-serving-apt/tensorflow-serving.release.pub.gpg \
#     | gpg --dearmor --yes -o /usr/share/keyrings/tensorflow-serving.gpg
# !echo "deb [arch=amd64 signed-by=/usr/share/keyrings/tensorflow-serving.gpg] http://storage.googleapis.com/tensorflow-serving-apt stable tensorflow-model-server tensorflow-model-server-universal" \
#     > /etc/apt/sources.list.d/tensorflow-serving.list
# !apt-get update -qq && apt-get install -y -qq tensorflow-model-server
# !python -m movierec.api export --out /content/models
# !nohup tensorflow_model_server --port=8500 --rest_api_port=8501 \
#     --model_config_file=/content/models/models.config > /content/tfserving.log 2>&1 &
# ```
#
# From Python, the hand-written `movierec.serving.launch` does it: `model_server(config)`
# starts `tensorflow_model_server` on two free loopback ports (`free_port`), waits until
# every model is `AVAILABLE`, yields the REST and gRPC addresses and stops the server
# after the `with` block; without the binary it raises `FileNotFoundError`.

# %%
from movierec.serving.launch import compare_with_model_server, free_port

# %% [markdown]
# ### Labels, and pinning a version
#
# A **label** names a version: `version_labels { key: "stable" value: 3 }`. A client
# asking for `/v1/models/ranker/labels/stable` (REST) or `model_spec.version_label`
# (gRPC) gets version 3 until the label moves. A canary rollout serves 3 and 4 with
# `specific`, labels them `stable` and `canary`, sends a slice of traffic to `canary`,
# then moves `stable` to 4. A label must point to a served version.
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
from movierec.serving.modelbase import parse_model_config

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
# A freshly loaded SavedModel is slow on its first calls (set-up is lazy), and after a
# version switch under load *every* client meets that spike. TF Serving's cure is the
# **warm-up file**, `<version>/assets.extra/tf_serving_warmup_requests`: serialized
# `PredictionLog`s, each one `PredictRequest`, replayed (up to 1,000) before the version
# is `AVAILABLE`. `export_servables` writes a few realistic ones per model (`write_warmup`
# in `modelbase`): a known and an unknown user, and 100 titles for the ranker.
# `replay_warmup` does what TF Serving does with them (so will lesson 08's in-process
# backend):

# %%
from movierec.serving.modelbase import WARMUP_PATH, replay_warmup

ranker_dir = models_base / "ranker" / str(export_info["version"])
started = time.perf_counter()
replayed = replay_warmup(ranker_dir, tf.saved_model.load(str(ranker_dir)).signatures["serving_default"])
print(f"{WARMUP_PATH} ({(ranker_dir / WARMUP_PATH).stat().st_size:,} bytes): replayed {replayed} requests in "
      f"{1000 * (time.perf_counter() - started):.0f} ms, model loading included")

# %% [markdown]
# ## 10. Calling TF Serving over REST
#
# TF Serving always listens for gRPC (`--port`). **REST is off unless started with
# `--rest_api_port`** (the Docker image sets both). REST speaks JSON:
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
# * **row format**, `{"signature_name": ..., "instances": [...]}`: one entry per example
#   (an object `{input: value}` for several inputs); the answer is `{"predictions": [...]}`,
#   per example a bare value (one output) or an object `{output: value}`;
# * **columnar format**, `{"signature_name": ..., "inputs": {name: [values...]}}`: one
#   list per input; the answer is `{"outputs": ...}`, a bare list (one output) or an
#   object of lists. Shorter for one user and 100 titles: our clients use it.
#
# Non-UTF-8 bytes travel as `{"b64": "..."}`. Errors — unknown model, version or label
# (404), inputs that break the signature (400) — come as `{"error": "a message"}`, which
# a client must surface rather than crash on a missing key.
#
# ### The metadata endpoint
#
# `GET /v1/models/ranker/metadata` answers with the `SignatureDef`s as JSON: each input
# and output with its graph name, its dtype as an enum name (`DT_STRING`, `DT_FLOAT`) and
# its shape as dimensions whose sizes are JSON *strings* (`"-1"` for "any"; protobuf's
# JSON mapping of 64-bit integers). A deployment script reads it to check the contract.
# `metadata_response` (from `modelbase`) builds that body offline from a SavedModel; the
# ranker's, shortened:

# %%
from movierec.serving.modelbase import metadata_response

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
# ### The request format, and two ways to fail
#
# `columnar_request` builds a columnar predict body and `predict_url` its address. Two
# exceptions name the ways a call fails: `ServingUnavailable` (no answer within the
# timeout; lesson 08's service answers 503) and `ServingError` (an error answer; 502).
# The clients are connection plumbing in the hand-written `movierec.serving.transport`:
# `TFServingRestClient(url, timeout_s)` sends these bodies with one `requests.Session` per
# thread, a timeout on every call (without one, a stalled server holds every worker
# thread of its clients), turns answers into arrays (`outputs_to_arrays`) and every
# failure into the two exceptions; `model_versions(model)` reads `GET /v1/models/<model>`.
# `TFServingGrpcClient` does the same over gRPC.

# %% tags=["export"]
#| export serving.clients
from collections.abc import Mapping
from typing import Any

import numpy as np


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


def predict_url(base_url: str, model: str, version: int | None = None) -> str:
    """``<base>/v1/models/<model>[/versions/<v>]:predict``."""
    where = f"/versions/{int(version)}" if version is not None else ""
    return f"{base_url.rstrip('/')}/v1/models/{model}{where}:predict"

# %% [markdown]
# ## 11. Calling TF Serving over gRPC
#
# A gRPC `PredictRequest` (package `tensorflow-serving-api`) names the model in
# `model_spec` (optionally a `version` or `version_label`, and the `signature_name`) and
# maps each input to a `TensorProto` (`tf.make_tensor_proto`); the answer's `outputs`
# become arrays with `tf.make_ndarray`. Tensors travel in binary over one HTTP/2
# connection: faster for large numeric inputs, about the same for a few strings.
# `UNAVAILABLE` or `DEADLINE_EXCEEDED` becomes `ServingUnavailable`; other codes, `ServingError`.

# %% tags=["export"]
#| export serving.clients
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2


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


# %% [markdown]
# Three titles for user 42 as a columnar body and as a `PredictRequest` (each
# `TensorProto` carries dtype, shape and values), and both clients calling a port where
# nothing listens: a clear `ServingUnavailable` within the timeout, not a hang.

# %%
from movierec.serving.transport import TFServingGrpcClient, TFServingRestClient

three = {"user_id": [b"42"] * 3, "movie_title": [b"Fargo (1996)", b"Heat (1995)", b"Toy Story (1995)"]}
print(json.dumps(columnar_request(three)))
print(grpc_predict_request("ranker", three, version=1))
for nobody in (TFServingRestClient(f"http://127.0.0.1:{free_port()}", 1.0), TFServingGrpcClient(f"127.0.0.1:{free_port()}", 1.0)):
    try:
        nobody.predict("ranker", {"user_id": ["42"], "movie_title": ["Fargo (1996)"]}, ["score"])
    except RuntimeError as exc:  # the library's ServingUnavailable: a twin of the class above, not the same object
        print(f"{type(nobody).__name__}: {type(exc).__name__}: {exc}")

# %% [markdown]
# ### With a real TF Serving
#
# When `tensorflow_model_server` is installed (section 8), `compare_with_model_server`
# (hand-written, in `launch`) serves our model base and checks that both protocols answer
# like the in-process models; elsewhere it says why it did nothing.

# %%
probe_ranker = {"user_id": probe_users, "movie_title": probe_titles}
print("\n".join(compare_with_model_server(models_base, {"query_tower": {"user_id": probe_users}, "ranker": probe_ranker})))

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
# The timeout is the price: a request may wait 2 ms for company. Batching pays off when
# requests arrive faster than the model answers them one by one, and on accelerators;
# `allowed_batch_sizes` keeps the shapes few. Our ranker already gets 100 titles per
# request, so merging helps it less: measure first (lesson 08 shows how).
#
# ## Summary
#
# Export through a `tf.Module` with an explicit `input_signature`, named outputs and the
# lookups inside the graph, then check signatures and reloaded answers. TF Serving serves
# `<base>/<model>/<version>/` under version policies and labels, replays warm-up records
# first, and answers REST and gRPC clients, which need timeouts; batching trades a bounded
# wait for throughput.
#
# ## References
#
# * C. Olston, N. Fiedel, K. Gorovoy, J. Harmsen, L. Lao, F. Li, V. Rajashekhar, S. Ramesh, J. Soyke (2017). *TensorFlow-Serving: Flexible, High-Performance ML Serving.* Workshop on ML Systems at NIPS 2017. <https://arxiv.org/abs/1712.06139>
# * TensorFlow guide: *Using the SavedModel format* (signatures, `saved_model_cli`). <https://www.tensorflow.org/guide/saved_model>
# * TensorFlow Serving: *RESTful API* (request and response formats, metadata, errors). <https://www.tensorflow.org/tfx/serving/api_rest>
# * TensorFlow Serving: *TensorFlow Serving with Docker*. <https://www.tensorflow.org/tfx/serving/docker>
# * TensorFlow Serving: *Installation* (the `tensorflow-model-server` apt package). <https://www.tensorflow.org/tfx/serving/setup>
# * TensorFlow Serving: *Serving Configuration* (model config file, version policies and labels). <https://www.tensorflow.org/tfx/serving/serving_config>
# * TensorFlow Serving: *SavedModel Warmup*. <https://www.tensorflow.org/tfx/serving/saved_model_warmup>
# * TensorFlow Serving: *Batching guide* (batching parameters). <https://github.com/tensorflow/serving/blob/master/tensorflow_serving/batching/README.md>
# * TensorFlow Serving: the gRPC API definitions (`predict.proto`, `prediction_service.proto`, `prediction_log.proto`). <https://github.com/tensorflow/serving/tree/master/tensorflow_serving/apis>
# * TensorFlow Recommenders: `tfrs.layers.factorized_top_k.BruteForce`. <https://www.tensorflow.org/recommenders/api_docs/python/tfrs/layers/factorized_top_k/BruteForce>
# * Feast: *What is Feast?* (a feature store: request-time features and point-in-time correct training data). <https://docs.feast.dev/>
