# DO NOT EDIT — generated from solutions/07_tf_serving.py by `python -m grader build`: edit the lesson instead.
"""Building blocks from lesson 07_tf_serving: Lesson 07 — TensorFlow Serving.

The cells of solutions/07_tf_serving.py tagged ``export`` whose first line
is ``#| export serving.export``, in lesson order; each block
names the section of the lesson that explains it.
"""

import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from movierec.dataset import to_numpy


# --- from solutions/07_tf_serving.py, section: 2. The models we will serve
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


# --- from solutions/07_tf_serving.py, section: 5. Raw strings in, features looked up inside the graph
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


# --- from solutions/07_tf_serving.py, section: 6. Three servables with explicit signatures
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


# --- from solutions/07_tf_serving.py, section: 7. Inspecting signatures, and checking the reloaded models
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


# --- from solutions/07_tf_serving.py, section: 8. TF Serving's model layout, versions and config
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
