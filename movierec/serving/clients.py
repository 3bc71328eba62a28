# DO NOT EDIT — generated from solutions/07_tf_serving.py by `python -m grader build`: edit the lesson instead.
"""Building blocks from lesson 07_tf_serving: Lesson 07 — TensorFlow Serving.

The cells of solutions/07_tf_serving.py tagged ``export`` whose first line
is ``#| export serving.clients``, in lesson order; each block
names the section of the lesson that explains it.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2


# --- from solutions/07_tf_serving.py, section: The request format, and two ways to fail
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


# --- from solutions/07_tf_serving.py, section: 11. Calling TF Serving over gRPC
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
