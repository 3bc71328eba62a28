"""The model base on disk: version directories, atomic saves, warm-up files, configs and metadata.

Hand-written, not generated from a lesson: lesson 07 imports these helpers and explains
each in a paragraph, since a student need not write directory bookkeeping or protobuf
plumbing to learn how TF Serving lays out, loads and describes models.

* :class:`ModelDirError`, :func:`version_dirs`, :func:`latest_version`, :func:`next_version` —
  ``<base>/<model>/<version>/``, TF Serving's layout (lesson 07, section 8);
* :func:`save_servable` — a SavedModel written to a hidden sibling and renamed into place,
  so a server watching the directory never loads half a version;
* :func:`write_warmup`, :func:`replay_warmup` — TF Serving's warm-up file (section 9),
  written at export and replayed by lesson 08's in-process backend as the server would;
* :func:`describe_signatures` — the Python equivalent of ``saved_model_cli show --all`` (section 7),
  and :func:`check_signature`, which compares it with a documented contract;
* :func:`parse_model_config` — a model config file read by TF Serving's own parser, as plain data;
* :func:`check_unclipped` — the ranker servable's raw score, clipped, equals the Keras model's output;
* :func:`metadata_response` — the body TF Serving answers to ``GET .../metadata``, built
  offline from a SavedModel (section 10).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

__all__ = [
    "MAX_WARMUP_RECORDS",
    "WARMUP_PATH",
    "ModelDirError",
    "check_signature",
    "check_unclipped",
    "describe_signatures",
    "latest_version",
    "metadata_response",
    "next_version",
    "parse_model_config",
    "replay_warmup",
    "save_servable",
    "version_dirs",
    "write_warmup",
]


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

    from movierec.serving.clients import grpc_predict_request  # the request a gRPC client sends

    if not 1 <= len(examples) <= MAX_WARMUP_RECORDS:
        raise ValueError(f"a warm-up file holds 1 to {MAX_WARMUP_RECORDS} requests, got {len(examples)}")
    path = Path(version_dir) / WARMUP_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for inputs in examples:
            log = prediction_log_pb2.PredictionLog()
            log.predict_log.request.CopyFrom(grpc_predict_request(model_name, inputs, signature_name=signature_name))
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
        models.append(
            {
                "name": str(entry.name),
                "base_path": str(entry.base_path),
                "platform": str(entry.model_platform),
                "policy": policy,
                "versions": versions,
                "labels": {str(k): int(v) for k, v in sorted(entry.version_labels.items())},
            }
        )
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
        "metadata": {
            "signature_def": json_format.MessageToDict(
                signatures, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
            )
        },
    }


def check_unclipped(servable: tf.Module, user_ids: Sequence[str], titles: Sequence[str]) -> None:
    """Raise ``ValueError`` if clipping a ``RankerServable``'s score differs from its Keras model's own output.

    Run at export on real inputs: ``unclipped_rating`` re-creates the ranker's call without
    its clip, and must be updated if lesson 05's model changes.
    """
    users, movies = tf.constant(list(user_ids)), tf.constant(list(titles))
    raw = servable.serve(users, movies)["score"].numpy()
    keras = np.reshape(servable.ranker(servable.lookup.pair_features(users, movies), training=False).numpy(), [-1])
    gap = float(np.max(np.abs(np.clip(raw, 1.0, 5.0) - keras)))
    if gap > 1e-4:
        raise ValueError(f"unclipped_rating no longer matches the ranker's call (gap {gap:.3g}); update it")


def check_signature(path: str | Path, contract: Mapping[str, Mapping[str, tuple]]) -> dict:
    """Raise ``ValueError`` naming the difference if ``path``'s ``serving_default`` breaks ``contract``.

    Returns that signature's description (:func:`describe_signatures`), so a caller need not load it again.

    ``contract`` is ``{"inputs"|"outputs": {name: (dtype, shape)}}`` with ``None`` for any
    size, as ``movierec.serving.export.SIGNATURES`` documents each exported model.
    """
    found = describe_signatures(path)
    if "serving_default" not in found:
        raise ValueError(f"{path} has no serving_default signature (it has {sorted(found)})")
    for side in ("inputs", "outputs"):
        expected, actual = contract[side], found["serving_default"][side]
        if set(expected) != set(actual):
            raise ValueError(f"{path}: {side} are {sorted(actual)}, the contract says {sorted(expected)}")
        for name, (dtype, shape) in expected.items():
            got_dtype, got_shape = actual[name]
            shape_ok = len(shape) == len(got_shape) and all(e is None or e == g for e, g in zip(shape, got_shape))
            if got_dtype != dtype or not shape_ok:
                raise ValueError(
                    f"{path}: {side[:-1]} {name!r} is {got_dtype} {got_shape}, the contract says {dtype} {shape}"
                )
    return found["serving_default"]
