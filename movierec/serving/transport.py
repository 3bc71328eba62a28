"""Connections to TF Serving: thread-safe REST and gRPC clients with a timeout on every call.

Hand-written, not generated from a lesson: lesson 07 teaches the request and response
formats (``movierec.serving.clients``: ``columnar_request``, ``outputs_to_arrays``,
``predict_url``, ``grpc_predict_request``) and imports these two classes, explained in a
paragraph, for the connection handling a student need not write: one
``requests.Session`` per thread (connections reused), a gRPC channel, and every failure
turned into one of two exceptions — :class:`~movierec.serving.clients.ServingUnavailable`
(nothing answered within the timeout; lesson 08's service answers 503) or
:class:`~movierec.serving.clients.ServingError` (the server answered with an error; 502).
Timeouts are not optional: without one, a stalled server holds every worker thread of
its clients.

:class:`TFServingBackend` is lesson 08's backend over these clients: the service's two
calls (*embed these users*, *score these pairs*) answered by TF Serving, with the query
tower pinned to the version of the Annoy index; lesson 08 explains it in a paragraph.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grpc
import numpy as np
import requests
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from movierec.serving.clients import (
    ServingError,
    ServingUnavailable,
    columnar_request,
    grpc_predict_request,
    predict_url,
)

__all__ = [
    "TFServingBackend",
    "TFServingGrpcClient",
    "TFServingRestClient",
    "grpc_response_to_arrays",
    "outputs_to_arrays",
]


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
