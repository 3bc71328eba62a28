"""Lessons 07 and 08: the serving library (``movierec.serving``) and the API's command line (``movierec.api``).

The fast tests need no trained model: request builders against TF Serving's documented
JSON and protobuf formats, the model layout and config, export wrappers on a tiny
stand-in model, and the clients' behaviour when no server answers. The tests marked
``slow`` train the course models with the quick budget once per session, export them,
and exercise the real exported models: signatures, reload equality, the API in-process
and as a child process. One test runs the whole path against a real
``tensorflow_model_server`` and is skipped when that binary is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from movierec.setup import configure_environment

configure_environment()  # Keras 2, before anything imports TensorFlow

import tensorflow as tf  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from google.protobuf import text_format  # noqa: E402
from tensorflow_serving.apis import predict_pb2  # noqa: E402
from tensorflow_serving.config import model_server_config_pb2  # noqa: E402

from movierec.serving import clients, export, features, launch, loadgen, modelbase, service, transport  # noqa: E402
from movierec.serving import index as annoy_export  # noqa: E402
from movierec.serving import tuning as search_k_tuning  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TF_SERVING_BINARY = shutil.which("tensorflow_model_server")


# --------------------------------------------------------------------------- helpers


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts connections and never answers: a stalled peer."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                connection, _ = self.sock.accept()
                self.accepted.append(connection)
            except OSError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for connection in self.accepted:
            connection.close()
        self.sock.close()


@pytest.fixture
def silent_server():
    server = SilentServer()
    yield server
    server.close()


def tiny_tower() -> tf.keras.Model:
    return tf.keras.Sequential(
        [
            tf.keras.layers.StringLookup(vocabulary=["1", "2", "3"]),
            tf.keras.layers.Embedding(4, 3, embeddings_initializer=tf.keras.initializers.RandomNormal(seed=1)),
        ]
    )


class TinyServable(tf.Module):
    """A stand-in servable with the query tower's contract, for export tests that need no training."""

    def __init__(self) -> None:
        super().__init__()
        self.tower = tiny_tower()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="user_id")])
    def serve(self, user_id):
        return {"embedding": self.tower(user_id), "known_user": tf.not_equal(user_id, "unknown")}


# --------------------------------------------------------------------------- REST and gRPC requests


def test_columnar_request_is_tf_servings_documented_json():
    body = clients.columnar_request(
        {"user_id": np.array([b"42", b"42"]), "movie_title": ["Fargo (1996)", b"Heat (1995)"]}
    )
    assert body == {
        "signature_name": "serving_default",
        "inputs": {"user_id": ["42", "42"], "movie_title": ["Fargo (1996)", "Heat (1995)"]},
    }
    assert json.loads(json.dumps(body)) == body
    numeric = clients.columnar_request({"x": np.array([[1.5, 2.0]], dtype=np.float32)}, signature_name="other")
    assert numeric == {"signature_name": "other", "inputs": {"x": [[1.5, 2.0]]}}


def test_predict_url_names_model_and_version():
    assert clients.predict_url("http://127.0.0.1:8501/", "ranker") == "http://127.0.0.1:8501/v1/models/ranker:predict"
    assert (
        clients.predict_url("http://h:8501", "query_tower", 3)
        == "http://h:8501/v1/models/query_tower/versions/3:predict"
    )


def test_outputs_to_arrays_handles_named_unnamed_and_error_bodies():
    many = transport.outputs_to_arrays(
        {"outputs": {"titles": [["A", "B"]], "scores": [[2.5, 1.0]]}}, ["titles", "scores"]
    )
    assert many["titles"].tolist() == [["A", "B"]]
    assert many["scores"].dtype == np.float32 and many["scores"].shape == (1, 2)
    single = transport.outputs_to_arrays({"outputs": [3.5, 4.0]}, ["score"])
    assert single["score"].tolist() == [3.5, 4.0]
    with pytest.raises(clients.ServingError, match="Servable not found"):
        transport.outputs_to_arrays({"error": "Servable not found for request: Latest(rankr)"}, ["score"])
    with pytest.raises(clients.ServingError, match="lacks outputs"):
        transport.outputs_to_arrays({"outputs": {"titles": [["A"]]}}, ["titles", "scores"])


def test_grpc_request_is_tf_servings_documented_protobuf():
    request = clients.grpc_predict_request(
        "ranker", {"user_id": ["42", "42"], "movie_title": np.array([b"Fargo (1996)", b"Heat (1995)"])}, version=2
    )
    expected = text_format.Parse(
        """
        model_spec { name: "ranker" version { value: 2 } signature_name: "serving_default" }
        inputs { key: "user_id" value { dtype: DT_STRING tensor_shape { dim { size: 2 } }
                                        string_val: "42" string_val: "42" } }
        inputs { key: "movie_title" value { dtype: DT_STRING tensor_shape { dim { size: 2 } }
                                            string_val: "Fargo (1996)" string_val: "Heat (1995)" } }
        """,
        predict_pb2.PredictRequest(),
    )
    assert request == expected
    unpinned = clients.grpc_predict_request("query_tower", {"user_id": ["7"]})
    assert not unpinned.model_spec.HasField("version"), "no version field means 'the latest version'"


def test_grpc_response_becomes_numpy_arrays():
    response = predict_pb2.PredictResponse()
    response.model_spec.name = "retrieval"
    response.outputs["scores"].CopyFrom(tf.make_tensor_proto(np.array([[2.0, 1.0]], dtype=np.float32)))
    response.outputs["titles"].CopyFrom(tf.make_tensor_proto(np.array([[b"A", b"B"]])))
    response.outputs["known_user"].CopyFrom(tf.make_tensor_proto(np.array([True])))
    arrays = transport.grpc_response_to_arrays(response)
    assert arrays["scores"].dtype == np.float32 and arrays["scores"].tolist() == [[2.0, 1.0]]
    assert arrays["titles"].tolist() == [["A", "B"]]
    assert arrays["known_user"].tolist() == [True]


# --------------------------------------------------------------------------- layout, config, export wrappers


def test_model_config_parses_as_tf_servings_model_server_config():
    text = export.model_config_text("/models")
    config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    entries = {c.name: c for c in config.model_config_list.config}
    assert set(entries) == set(export.SERVED_MODELS)
    for name, entry in entries.items():
        assert entry.base_path == f"/models/{name}"
        assert entry.model_platform == "tensorflow"
        assert entry.model_version_policy.latest.num_versions == export.VERSIONS_KEPT[name]
    assert entries["query_tower"].model_version_policy.latest.num_versions == 2, "the API pins the query tower"


def test_versions_and_the_error_naming_an_empty_model_dir(tmp_path):
    model_dir = tmp_path / "ranker"
    model_dir.mkdir()
    with pytest.raises(modelbase.ModelDirError, match=str(model_dir.resolve())):
        modelbase.latest_version(model_dir)
    for version in ("1", "10", "2"):
        (model_dir / version).mkdir()
        (model_dir / version / "saved_model.pb").write_bytes(b"")
    (model_dir / "3").mkdir()  # no saved_model.pb: not a version
    (model_dir / ".4.partial-1").mkdir()
    assert modelbase.version_dirs(model_dir) == [1, 2, 10]
    assert modelbase.latest_version(model_dir) == 10
    assert modelbase.next_version(tmp_path) == 11


def test_save_servable_publishes_named_signature_atomically(tmp_path):
    servable = TinyServable()
    path = modelbase.save_servable(servable, tmp_path / "query_tower" / "1")
    assert sorted(p.name for p in (tmp_path / "query_tower").iterdir()) == ["1"], "no staging directory left behind"
    described = modelbase.describe_signatures(path)
    assert described == {
        "serving_default": {
            "inputs": {"user_id": ("string", (None,))},
            "outputs": {"embedding": ("float32", (None, 3)), "known_user": ("bool", (None,))},
        }
    }
    modelbase.check_signature(path, export.SIGNATURES["query_tower"])
    probe = tf.constant(["1", "3", "unknown"])
    reloaded = tf.saved_model.load(str(path)).signatures["serving_default"](user_id=probe)
    np.testing.assert_array_equal(reloaded["embedding"].numpy(), servable.serve(probe)["embedding"].numpy())
    with pytest.raises(FileExistsError):
        modelbase.save_servable(servable, path)


def test_check_signature_rejects_generated_names(tmp_path):
    tower = tiny_tower()
    tower(tf.constant(["1"]))
    tf.saved_model.save(tower, str(tmp_path / "generated"))
    with pytest.raises(ValueError, match="inputs are"):
        modelbase.check_signature(tmp_path / "generated", export.SIGNATURES["query_tower"])


def test_uncalled_bruteforce_exports_no_signature(tmp_path):
    """The trap the lesson teaches: TensorFlow publishes only what was traced."""
    import tensorflow_recommenders as tfrs

    index = tfrs.layers.factorized_top_k.BruteForce(k=2)
    index.index(candidates=tf.eye(3), identifiers=tf.constant(["a", "b", "c"]))
    tf.saved_model.save(index, str(tmp_path / "uncalled"))
    assert list(tf.saved_model.load(str(tmp_path / "uncalled")).signatures) == []


def test_feature_lookup_defaults_and_ragged_genres():
    users = {
        "user_id": np.array([b"1", b"2", b"3"]),
        "bucketized_user_age": np.array([25.0, 25.0, 35.0], dtype=np.float32),
        "raw_user_age": np.array([24.0, 26.0, 40.0], dtype=np.float32),
        "user_gender": np.array([True, False, False]),
        "user_occupation_label": np.array([3, 3, 7]),
        "user_occupation_text": np.array([b"writer", b"writer", b"doctor"]),
        "user_zip_code": np.array([b"10001", b"94110", b"94110"]),
        "timestamp": np.array([100, 300, 200]),
    }
    movies = {
        "movie_title": np.array([b"A", b"B"]),
        "movie_id": np.array([b"1", b"2"]),
        "movie_genres": np.array([b"4 7", b""]),
    }
    lookup = features.FeatureLookup(users, movies)
    found, known = lookup.user_features(tf.constant(["3", "nobody"]))
    assert known.numpy().tolist() == [True, False]
    assert found["raw_user_age"].numpy()[0] == 40.0
    assert found["bucketized_user_age"].numpy()[1] == 25.0, "unknown users get the most common value"
    assert found["user_gender"].dtype == tf.bool and not found["user_gender"].numpy()[1]
    assert found["timestamp"].numpy()[1] == 300, "unknown users are served at the latest time in the data"
    movie = lookup.movie_features(tf.constant(["A", "B", "Z"]))
    assert movie["movie_genres"].to_list() == [[4, 7], [], []]
    assert movie["movie_id"].numpy().tolist() == [b"1", b"2", b""]


# --------------------------------------------------------------------------- failures without a server


def test_rest_client_unreachable_server_is_serving_unavailable():
    client = transport.TFServingRestClient(f"http://127.0.0.1:{launch.free_port()}", timeout_s=1.0)
    with pytest.raises(clients.ServingUnavailable, match="unreachable"):
        client.predict("ranker", {"user_id": ["1"], "movie_title": ["A"]}, ["score"])
    with pytest.raises(clients.ServingUnavailable):
        client.model_versions("ranker")


def test_rest_client_stalled_server_times_out(silent_server):
    client = transport.TFServingRestClient(f"http://127.0.0.1:{silent_server.port}", timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(clients.ServingUnavailable, match="did not answer within 0.5 s"):
        client.predict("ranker", {"user_id": ["1"], "movie_title": ["A"]}, ["score"])
    assert time.monotonic() - started < 5


def test_grpc_client_unreachable_server_is_serving_unavailable():
    client = transport.TFServingGrpcClient(f"127.0.0.1:{launch.free_port()}", timeout_s=1.0)
    try:
        with pytest.raises(clients.ServingUnavailable):
            client.predict("ranker", {"user_id": ["1"], "movie_title": ["A"]})
    finally:
        client.close()


def test_rest_client_rejects_non_http_urls():
    with pytest.raises(ValueError):
        transport.TFServingRestClient("127.0.0.1:8501")


# --------------------------------------------------------------------------- latency tools


def test_latency_summary_percentiles():
    summary = loadgen.latency_summary(list(range(1, 101)))
    assert summary["n"] == 100 and summary["max_ms"] == 100
    assert summary["p50_ms"] == pytest.approx(50.5)
    assert summary["p99_ms"] == pytest.approx(99.01)
    with pytest.raises(ValueError):
        loadgen.latency_summary([])


@pytest.mark.parametrize("url", ["http://10.0.0.1:8000", "http://example.com", "http://192.168.1.2:8000"])
def test_load_test_only_targets_the_loopback(url):
    with pytest.raises(ValueError, match="loopback"):
        loadgen.load_test(url, ["1"], concurrency=1, duration_s=0.1)


# --------------------------------------------------------------------------- the recommender's logic, on test doubles

TOY_TITLES = [f"T{i:02d}" for i in range(30)]


def toy_index(labels=TOY_TITLES):
    """A tiny Annoy index whose dot-product order for the query (1, 0) is the label order."""
    from movierec.annoy import MovieIndex

    vectors = np.array([[len(labels) - i, 1.0] for i in range(len(labels))], dtype=np.float32)
    return MovieIndex.build(vectors, list(labels), metric="dot", n_trees=5, seed=1)


class BackendDouble:
    """A test double of the recommender's backend interface (embed, score, versions, health).

    Not TF Serving and not a model: ``embed`` answers the query (1, 0) for every user and
    ``score`` looks titles up in ``scores``; ``embed_answer``/``score_answer`` replace
    those answers, to play a model server that answers malformed data.
    """

    name = "test-double"

    def __init__(self, scores=None, *, embed_answer=None, score_answer=None):
        self.scores = scores or {}
        self.embed_answer = embed_answer
        self.score_answer = score_answer
        self.embedded: list[list[str]] = []

    def embed(self, user_ids):
        self.embedded.append(list(user_ids))
        if self.embed_answer is not None:
            return self.embed_answer(user_ids)
        return np.tile(np.array([1.0, 0.0], dtype=np.float32), (len(user_ids), 1)), np.ones(len(user_ids), bool)

    def score(self, user_ids, titles):
        if self.score_answer is not None:
            return self.score_answer(user_ids, titles)
        return np.array([self.scores.get(t, 0.0) for t in titles], dtype=np.float32)

    def versions(self):
        return {"query_tower": 1, "ranker": 1}

    def health(self):
        return {"status": "ok", "backend": self.name}


TOY_HISTORY = {"seen": {"u": TOY_TITLES[:15], "v": []}, "popular": [["T29", 50], ["T28", 40], ["T07", 30]]}


def toy_recommender(backend=None, labels=TOY_TITLES, n_candidates=5):
    return service.Recommender(  # a search budget this large makes the tiny index exact
        backend or BackendDouble(),
        toy_index(labels),
        index_version=1,
        history=TOY_HISTORY,
        search_k=10_000,
        n_candidates=n_candidates,
    )


def test_seen_titles_are_never_recommended_and_k_is_still_filled():
    # "u" rated the 15 titles retrieval ranks first: the 5 candidates must come from further down.
    body = toy_recommender().recommend("u", 5)
    titles = [item["title"] for item in body["recommendations"]]
    assert titles == TOY_TITLES[15:20], titles
    assert body["candidates"] == 5 and body["fallback"] is None
    assert not set(titles) & set(TOY_HISTORY["seen"]["u"])
    everything = toy_recommender().recommend("u", 30)["recommendations"]
    assert {item["title"] for item in everything} == set(TOY_TITLES[15:]), "every unseen title, and only those"


def test_order_is_by_the_raw_score_and_only_the_stars_are_clipped():
    scores = {"T00": 5.5, "T01": 7.0, "T02": 4.0, "T03": 6.0, "T04": 5.1}
    body = toy_recommender(BackendDouble(scores)).recommend("v", 5)
    assert [item["title"] for item in body["recommendations"]] == ["T01", "T03", "T00", "T04", "T02"]
    assert [item["score"] for item in body["recommendations"]] == [7.0, 6.0, 5.5, pytest.approx(5.1), 4.0]
    assert [item["stars"] for item in body["recommendations"]] == [5.0, 5.0, 5.0, 5.0, 4.0]


def test_a_title_indexed_twice_is_returned_once():
    labels = ["A", "A", "B", "B", "C", "D"]
    body = toy_recommender(labels=labels, n_candidates=4).recommend("v", 4)
    assert [item["title"] for item in body["recommendations"]] == ["A", "B", "C", "D"]


def test_distinct_titles_keeps_the_first_row_of_each_title():
    titles, vectors = features.distinct_titles(
        np.array([b"A", b"B", b"A", b"C"]), np.array([[1.0], [2.0], [3.0], [4.0]])
    )
    assert titles.tolist() == [b"A", b"B", b"C"] and vectors[:, 0].tolist() == [1.0, 2.0, 4.0]


def test_unknown_users_get_the_flagged_popularity_fallback_without_a_model_call():
    backend = BackendDouble()
    body = toy_recommender(backend).recommend("stranger", 2)
    assert body["fallback"] == "popularity" and body["known_user"] is False and "unknown user" in body["warning"]
    assert body["recommendations"] == [
        {"title": "T29", "ratings_in_training": 50},
        {"title": "T28", "ratings_in_training": 40},
    ]
    assert backend.embedded == [], "the untrained out-of-vocabulary embedding must not be used"


def test_rating_history_lists_seen_titles_and_popularity():
    train = tf.data.Dataset.from_tensor_slices(
        {"user_id": ["1", "1", "2", "3", "3"], "movie_title": ["B", "A", "A", "C", "A"]}
    )
    history = annoy_export.rating_history(train)
    assert history["seen"] == {"1": ["A", "B"], "2": ["A"], "3": ["A", "C"]}
    assert history["popular"] == [["A", 3], ["B", 1], ["C", 1]]
    columns = {"user_id": np.array([b"1", b"1", b"2", b"3", b"3"]),
               "movie_title": np.array([b"B", b"A", b"A", b"C", b"A"])}
    assert annoy_export.rating_history(columns) == history, "a dict of columns gives what the dataset gives"
    with pytest.raises(ValueError, match="movie_title"):
        annoy_export.rating_history({"user_id": columns["user_id"]})


@pytest.mark.serving
def test_read_train_test_gives_the_rows_of_the_lazy_random_split():
    """Lessons 06-08 read the ratings once and split on row numbers: the same rows, in the same order."""
    from movierec.dataset import load_ratings, random_split, to_numpy
    from movierec.retrieval import read_train_test

    keys = ("user_id", "movie_title", "timestamp", "user_rating")
    train, test = read_train_test()
    lazy_train, lazy_validation, lazy_test = random_split(load_ratings())
    for columns, lazy in ((train, lazy_train.concatenate(lazy_validation)), (test, lazy_test)):
        expected = to_numpy(lazy, keys)
        for key in keys:
            np.testing.assert_array_equal(columns[key].numpy(), expected[key], err_msg=key)
    assert len(train["user_id"]) == 80_000 and len(test["user_id"]) == 20_000


def _rows(n, dim=2, value=0.5):
    return np.full((n, dim), value, dtype=np.float32)


MALFORMED = {
    "embedding of strings": dict(
        embed_answer=lambda ids: (np.array([["a", "b"]] * len(ids)), np.ones(len(ids), bool)),
        message="should hold numbers",
    ),
    "wrong embedding size": dict(
        embed_answer=lambda ids: (_rows(len(ids), dim=7), np.ones(len(ids), bool)), message="the Annoy index needs"
    ),
    "NaN embedding": dict(
        embed_answer=lambda ids: (_rows(len(ids), value=np.nan), np.ones(len(ids), bool)), message="NaN"
    ),
    "three outputs from the query tower": dict(
        embed_answer=lambda ids: (_rows(len(ids)), np.ones(len(ids), bool), "extra"), message="3 outputs"
    ),
    "NaN scores": dict(score_answer=lambda ids, titles: np.full(len(titles), np.nan), message="NaN"),
    "one score too few": dict(score_answer=lambda ids, titles: np.ones(len(titles) - 1), message="scores of shape"),
    "scores as text": dict(score_answer=lambda ids, titles: ["4.5"] * len(titles), message="should hold numbers"),
    "ragged scores": dict(score_answer=lambda ids, titles: [[1.0], [2.0, 3.0]], message="not a regular array"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_backend_answers_give_502_and_an_unhealthy_healthz(case):
    spec = dict(MALFORMED[case])
    message = spec.pop("message")
    client = TestClient(service.create_app(toy_recommender(BackendDouble(**spec))))
    reply = client.get("/recommend/u", params={"k": 3})
    assert reply.status_code == 502, reply.text
    assert "malformed" in reply.json()["error"] and message in reply.json()["error"], reply.json()
    health = client.get("/healthz")
    assert health.status_code == 503, health.text
    assert health.json()["status"] == "unhealthy" and message in health.json()["error"]


def test_a_well_behaved_backend_is_healthy():
    reply = TestClient(service.create_app(toy_recommender())).get("/healthz")
    assert reply.status_code == 200 and reply.json()["status"] == "ok"


class TFServingClientDouble:
    """A test double of the TF Serving client interface (predict, model_versions) that answers what it is given."""

    def __init__(self, outputs):
        self.outputs = outputs

    def predict(self, model, inputs, output_names, *, version=None):
        return transport.outputs_to_arrays({"outputs": self.outputs[model]}, output_names)

    def model_versions(self, model):
        return {1: "AVAILABLE"}


@pytest.mark.parametrize(
    "outputs, message",
    [
        ({"query_tower": {"embedding": [["x", "y"]], "known_user": [True]}}, "should hold numbers"),
        ({"query_tower": {"embedding": [[1.0, 0.0, 0.0]], "known_user": [True]}}, "the Annoy index needs"),
        ({"query_tower": {"embedding": [[1.0, 0.0]]}}, "lacks outputs"),
        ({"query_tower": [[1.0, 0.0]]}, "got one unnamed output"),
        ({"query_tower": {"embedding": [[1.0], [0.0, 2.0]], "known_user": [True]}}, "not a regular array"),
        (
            {"query_tower": {"embedding": [[1.0, 0.0]], "known_user": [True]}, "ranker": {"score": [None] * 5}},
            "should hold numbers",
        ),
    ],
)
def test_tf_serving_backend_with_malformed_json_gives_502(outputs, message):
    backend = transport.TFServingBackend("http://127.0.0.1:9", query_version=1)
    backend.client = TFServingClientDouble(outputs)
    reply = TestClient(service.create_app(toy_recommender(backend))).get("/recommend/u", params={"k": 3})
    assert reply.status_code == 502, reply.text
    assert message in reply.json()["error"], reply.json()


# --------------------------------------------------------------------------- connection limits of the API server


def _tiny_app():
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/slow")
    def slow():
        time.sleep(1.0)  # longer than the test's header deadline: a handler is never cut short
        return {"ok": True}

    return app


@pytest.fixture
def guarded_server():
    """The API's uvicorn configuration with short limits, serving a tiny app on 127.0.0.1 in a thread."""
    import uvicorn

    from movierec import api

    class ShortLimits(api.GuardedH11Protocol):
        header_timeout_s = 0.6
        max_waiting = 8

    config = api.server_config(_tiny_app(), host="127.0.0.1", port=launch.free_port(), http=ShortLimits)
    config.timeout_keep_alive = 1
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield config.port
    server.should_exit = True
    thread.join(timeout=10)


def _closed_by_peer(sock, within_s):
    """True if the server closes ``sock`` within ``within_s`` seconds."""
    sock.settimeout(within_s)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def _request(port, path="/slow"):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return sock.recv(65536).split(b"\r\n", 1)[0]


def test_server_config_sets_the_connection_limits():
    from movierec import api

    config = api.server_config(_tiny_app(), host="127.0.0.1", port=8000)
    assert config.http is api.GuardedH11Protocol
    assert config.timeout_keep_alive == api.KEEP_ALIVE_S <= 10
    assert config.h11_max_incomplete_event_size == api.MAX_HEADER_BYTES
    assert api.GuardedH11Protocol.max_waiting + config.backlog < 1024, "below the usual per-process descriptor limit"


def test_idle_keep_alive_connections_are_closed(guarded_server):
    with socket.create_connection(("127.0.0.1", guarded_server), timeout=10) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert _closed_by_peer(sock, within_s=5), "an idle keep-alive connection must be closed"
        assert time.monotonic() - started < 3


def test_a_slowloris_request_is_cut_off_at_the_header_deadline(guarded_server):
    with socket.create_connection(("127.0.0.1", guarded_server), timeout=10) as sock:
        started = time.monotonic()
        closed = False
        for byte in b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
            try:
                sock.sendall(bytes([byte]))  # one byte every 0.1 s: every byte resets uvicorn's own idle timer
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.1)
            if time.monotonic() - started > 5:
                break
        assert closed or _closed_by_peer(sock, within_s=0.5), "a trickled request must be closed"
        assert time.monotonic() - started < 3
    assert _request(guarded_server) == b"HTTP/1.1 200 OK", "a slow handler is not cut by the header deadline"


def test_connections_waiting_for_a_request_are_capped(guarded_server):
    sockets = [socket.create_connection(("127.0.0.1", guarded_server), timeout=10) for _ in range(20)]
    try:
        for sock in sockets:
            sock.sendall(b"GET /slow HTTP/1.1\r\n")  # half a request, then silence
        time.sleep(0.3)  # before the header deadline: only the cap can have closed any
        open_ = [sock for sock in sockets if not _closed_by_peer(sock, within_s=0.05)]
        assert len(open_) <= 8, f"{len(open_)} half-sent requests still hold a connection; the cap is 8"
        assert _request(guarded_server) == b"HTTP/1.1 200 OK", "the server still serves complete requests"
    finally:
        for sock in sockets:
            sock.close()


SLOWLORIS_SERVER = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))
import uvicorn
from fastapi import FastAPI
from movierec import api
app = FastAPI()
app.get("/ping")(lambda: {"ok": True})
uvicorn.Server(api.server_config(app, host="127.0.0.1", port=int(sys.argv[1]))).run()
"""


def test_slowloris_cannot_exhaust_a_1024_descriptor_limit():
    """1,100 half-sent requests against the API's server settings in a process limited to 1,024 descriptors."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"this test needs 2,048 descriptors on the client side; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    port = launch.free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    server = subprocess.Popen([sys.executable, "-c", SLOWLORIS_SERVER, str(port)], env=env, cwd=ROOT)
    sockets = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                assert _request(port, "/ping") == b"HTTP/1.1 200 OK"
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        for _ in range(1100):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n")  # and never the blank line that ends it
            sockets.append(sock)
        peak = 0
        for _ in range(20):  # 2 s: the server's descriptors, sampled while it works through the connections
            assert server.poll() is None, "the server died"
            peak = max(peak, len(os.listdir(f"/proc/{server.pid}/fd")) if Path("/proc").is_dir() else 0)
            time.sleep(0.1)
        assert peak < 600, f"the server held {peak} descriptors for half-sent requests"
        assert _request(port, "/ping") == b"HTTP/1.1 200 OK", "a complete request is still served"
    finally:
        for sock in sockets:
            sock.close()
        server.terminate()
        server.wait(timeout=15)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# --------------------------------------------------------------------------- command line


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.run(
        [sys.executable, "-m", "movierec.api", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_cli_refuses_a_model_directory_without_versions(tmp_path):
    (tmp_path / "annoy").mkdir()
    (tmp_path / "query_tower").mkdir()
    result = run_cli("serve", "--models", str(tmp_path), "--port", str(launch.free_port()))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "cannot start the API" in result.stderr
    assert str((tmp_path / "annoy").resolve()) in result.stderr, "the error names the directory without versions"
    assert "Traceback" not in result.stderr


def test_cli_refuses_a_missing_model_directory(tmp_path):
    result = run_cli("serve", "--models", str(tmp_path / "nowhere"), "--port", str(launch.free_port()))
    assert result.returncode == 2 and str((tmp_path / "nowhere").resolve()) in result.stderr
    assert "python -m movierec.api export" in result.stderr


# --------------------------------------------------------------------------- the real exported models (slow)


@pytest.fixture(scope="module")
def exported(served_models):
    """The session's quick course models, exported once (``served_models`` in conftest.py)."""
    return served_models


@pytest.fixture(scope="module")
def recommender(exported):
    return service.load_recommender(exported["base"])


@pytest.fixture(scope="module")
def api(recommender):
    return TestClient(service.create_app(recommender))


@pytest.mark.serving
def test_export_layout_and_config(exported):
    base, version = exported["base"], exported["info"]["version"]
    assert version == 1
    for name in export.SERVED_MODELS:
        assert modelbase.version_dirs(base / name) == [1], f"{name} should have exactly version 1"
    assert modelbase.version_dirs(base / annoy_export.ANNOY_DIR, marker=annoy_export.ANNOY_FILE) == [1]
    local = text_format.Parse((base / "models.config").read_text(), model_server_config_pb2.ModelServerConfig())
    assert {c.base_path for c in local.model_config_list.config} == {
        str((base / n).resolve()) for n in export.SERVED_MODELS
    }
    docker = text_format.Parse((base / "models.docker.config").read_text(), model_server_config_pb2.ModelServerConfig())
    assert {c.base_path for c in docker.model_config_list.config} == {f"/models/{n}" for n in export.SERVED_MODELS}
    assert not list(base.rglob(".*partial*")), "no staging directories left behind"


@pytest.mark.serving
@pytest.mark.parametrize("name", export.SERVED_MODELS)
def test_exported_signatures_have_the_documented_names_dtypes_and_shapes(exported, name):
    path = exported["base"] / name / "1"
    modelbase.check_signature(path, export.SIGNATURES[name])
    signature = modelbase.describe_signatures(path)
    assert list(signature) == ["serving_default"], "exactly one, explicitly named signature"
    dim = exported["info"]["embedding_dim"]
    expected = {
        "query_tower": {
            "inputs": {"user_id": ("string", (None,))},
            "outputs": {"embedding": ("float32", (None, dim)), "known_user": ("bool", (None,))},
        },
        "ranker": {
            "inputs": {"movie_title": ("string", (None,)), "user_id": ("string", (None,))},
            "outputs": {"score": ("float32", (None,))},
        },
        "retrieval": {
            "inputs": {"user_id": ("string", (None,))},
            "outputs": {
                "known_user": ("bool", (None,)),
                "scores": ("float32", (None, export.N_CANDIDATES)),
                "titles": ("string", (None, export.N_CANDIDATES)),
            },
        },
    }[name]
    assert signature["serving_default"] == expected


@pytest.mark.serving
def test_reloaded_models_answer_like_the_in_memory_models(exported):
    lookup, retrieval_model = exported["lookup"], exported["retrieval_model"]
    from movierec.retrieval import candidate_embeddings

    titles, vectors = candidate_embeddings(retrieval_model, exported["movies"])
    in_memory = {
        "query_tower": export.QueryTowerServable(retrieval_model.query_tower, lookup),
        "ranker": export.RankerServable(exported["ranking_model"], lookup),
        "retrieval": export.RetrievalServable(retrieval_model.query_tower, lookup, titles, np.asarray(vectors)),
    }
    users = tf.constant(["42", "1", "943", "not-a-user"])
    movie_titles = tf.constant(["Star Wars (1977)", "Fargo (1996)", "Toy Story (1995)", "Heat (1995)"])
    inputs = {
        "query_tower": {"user_id": users},
        "ranker": {"user_id": users, "movie_title": movie_titles},
        "retrieval": {"user_id": users},
    }
    for name, servable in in_memory.items():
        expected = servable.serve(**inputs[name])
        reloaded = tf.saved_model.load(str(exported["base"] / name / "1")).signatures["serving_default"](**inputs[name])
        assert set(reloaded) == set(expected)
        for key, value in expected.items():
            if value.dtype.is_floating:
                np.testing.assert_allclose(
                    reloaded[key].numpy(), value.numpy(), rtol=1e-6, atol=1e-6, err_msg=f"{name}.{key}"
                )
            else:
                np.testing.assert_array_equal(reloaded[key].numpy(), value.numpy(), err_msg=f"{name}.{key}")
    # The query tower behind the lookups is the trained tower on the user's own profile.
    known = in_memory["query_tower"].serve(users)["known_user"].numpy()
    assert known.tolist() == [True, True, True, False]


@pytest.mark.serving
def test_ranker_servable_scores_what_the_keras_ranker_scores_from_precomputed_rows(exported):
    """The servable gathers a precomputed user row and title row per pair; the scores must be the
    Keras model's own unclipped ones for known and unknown users and titles alike, in any mix."""
    ranker, lookup = exported["ranking_model"], exported["lookup"]
    servable = export.RankerServable(ranker, lookup)
    titles = sorted(t.decode() for t in lookup.movie_ids.export()[0].numpy().tolist())[:40]
    users = ["1", "42", "943", "not-a-user", "", "42 ", "\x00unknown"] * 8
    pairs = list(zip(users, titles + ["Not A Movie (2031)", "", "Star Wars (1977)"] * 8))
    user_ids, movie_titles = (tf.constant([pair[i] for pair in pairs]) for i in (0, 1))
    served = servable.serve(user_ids, movie_titles)["score"].numpy()
    keras = export.unclipped_rating(ranker, lookup.pair_features(user_ids, movie_titles)).numpy()
    np.testing.assert_allclose(served, keras, rtol=1e-6, atol=1e-6)
    assert servable.serve(tf.constant([], tf.string), tf.constant([], tf.string))["score"].shape == (0,)
    graph = tf.saved_model.load(str(exported["base"] / "ranker" / "1")).signatures["serving_default"].graph
    nodes = list(graph.as_graph_def().node) + [n for f in graph.as_graph_def().library.function for n in f.node_def]
    assert sum(n.op == "LookupTableFindV2" for n in nodes) == 2, "one table lookup per id, none per feature"


def test_ranker_servable_refuses_an_encoder_block_it_cannot_place():
    """A new encoder block must be declared a user or a title block, or the precomputed rows would miss it."""
    class Encoder:
        def block_slices(self):
            return {"user_id": slice(0, 4), "movie_title": slice(4, 8), "weather": slice(8, 9)}

    class Ranker:
        encoder = Encoder()

    with pytest.raises(ValueError, match=r"\['weather'\] are neither user nor title blocks"):
        features.encoder_rows(Ranker(), lookup=None)


@pytest.mark.serving
def test_exact_retrieval_model_agrees_with_the_tower_and_catalogue(exported):
    retrieval = tf.saved_model.load(str(exported["base"] / "retrieval" / "1")).signatures["serving_default"]
    query = tf.saved_model.load(str(exported["base"] / "query_tower" / "1")).signatures["serving_default"]
    from movierec.retrieval import candidate_embeddings

    titles, vectors = features.distinct_titles(*candidate_embeddings(exported["retrieval_model"], exported["movies"]))
    out = retrieval(user_id=tf.constant(["42"]))
    embedding = query(user_id=tf.constant(["42"]))["embedding"].numpy()[0]
    exact = np.sort(np.asarray(vectors) @ embedding)[::-1][: export.N_CANDIDATES]
    np.testing.assert_allclose(out["scores"].numpy()[0], exact, rtol=1e-4, atol=1e-4)


@pytest.mark.serving
def test_retrieval_servable_returns_each_title_once(exported):
    retrieval = tf.saved_model.load(str(exported["base"] / "retrieval" / "1")).signatures["serving_default"]
    users = [str(u) for u in range(1, 944)]
    titles = retrieval(user_id=tf.constant(users))["titles"].numpy()
    repeated = [u for u, row in zip(users, titles) if len(set(row.tolist())) != len(row)]
    assert not repeated, f"users whose exact top-100 holds a title twice: {repeated[:5]}"


@pytest.mark.serving
def test_ranker_servable_scores_are_the_unclipped_predictions(exported):
    ranker = export.RankerServable(exported["ranking_model"], exported["lookup"])
    users = tf.constant([str(u) for u in range(1, 101)] * 3)
    titles = tf.constant(["Star Wars (1977)"] * 100 + ["Fargo (1996)"] * 100 + ["Heat (1995)"] * 100)
    raw = ranker.serve(users, titles)["score"].numpy()
    keras = exported["ranking_model"](ranker.lookup.pair_features(users, titles), training=False).numpy().reshape(-1)
    np.testing.assert_allclose(np.clip(raw, 1.0, 5.0), keras, atol=1e-5)
    modelbase.check_unclipped(ranker, ["1", "2"], ["Star Wars (1977)", "Fargo (1996)"])


@pytest.mark.serving
def test_annoy_index_is_served_with_lesson_06s_settings_and_its_recall_is_reported(exported, recommender):
    index_dir = exported["base"] / annoy_export.ANNOY_DIR / "1"
    tuning = json.loads((index_dir / annoy_export.TUNING_FILE).read_text())
    assert tuning["n_trees"] == annoy_export.ANNOY_TREES == 10 and recommender.index.n_trees == 10
    assert tuning["search_k"] in search_k_tuning.SEARCH_K_GRID and recommender.search_k == tuning["search_k"]
    grid_end = search_k_tuning.SEARCH_K_GRID[-1]
    assert tuning["tuning_recall_at_100"] >= search_k_tuning.TARGET_RECALL or tuning["search_k"] == grid_end
    assert exported["info"]["annoy_recall_at_100"] == pytest.approx(tuning["recall_at_100"], abs=1e-4)
    # Recomputed here against the saved exact servable, for a sample of users.
    users = [str(u) for u in range(1, 944, 7)]
    query = tf.saved_model.load(str(exported["base"] / "query_tower" / "1")).signatures["serving_default"]
    exact = tf.saved_model.load(str(exported["base"] / "retrieval" / "1")).signatures["serving_default"]
    queries = query(user_id=tf.constant(users))["embedding"].numpy()
    truth = [[t.decode() for t in row] for row in exact(user_id=tf.constant(users))["titles"].numpy()]
    found = search_k_tuning.annoy_titles(recommender.index, queries, export.N_CANDIDATES, recommender.search_k)
    recall = search_k_tuning.recall_against(found, truth)
    assert recall == pytest.approx(tuning["recall_at_100"], abs=0.03) and recall >= 0.9, recall
    assert len(recommender.index) == recommender.catalogue_size, "one row per title"


@pytest.mark.serving
def test_api_recommends_with_the_in_process_backend(api, recommender):
    reply = api.get("/recommend/42", params={"k": 10})
    assert reply.status_code == 200
    body = reply.json()
    assert body["user_id"] == "42" and body["known_user"] is True and body["k"] == 10
    assert body["backend"] == "in-process"
    assert body["model_versions"] == {"query_tower": 1, "ranker": 1, "annoy_index": 1}
    titles = [item["title"] for item in body["recommendations"]]
    scores = [item["score"] for item in body["recommendations"]]
    assert len(titles) == 10 and len(set(titles)) == 10
    assert scores == sorted(scores, reverse=True)
    assert body["candidates"] == export.N_CANDIDATES
    # The scores are the ranker's, for this user.
    ranker = recommender.backend.score(["42"] * len(titles), titles)
    np.testing.assert_allclose(scores, ranker, atol=1e-5)
    assert not set(titles) & recommender.seen["42"], "no movie user 42 rated in training"
    stars = [item["stars"] for item in body["recommendations"]]
    np.testing.assert_allclose(stars, np.clip(scores, 1.0, 5.0), atol=0.01)
    everything = api.get("/recommend/42", params={"k": recommender.catalogue_size}).json()
    returned = {item["title"] for item in everything["recommendations"]}
    assert len(returned) == len(everything["recommendations"])
    assert returned == set(recommender.index.labels.tolist()) - recommender.seen["42"], "every unseen movie, once"


@pytest.mark.serving
def test_no_user_is_recommended_a_movie_they_rated_in_training(recommender):
    returned = seen = unfiltered_seen = 0
    for user in sorted(recommender.seen, key=int):
        titles = [item["title"] for item in recommender.recommend(user, 10)["recommendations"]]
        assert len(titles) == 10
        returned += len(titles)
        seen += len(set(titles) & recommender.seen[user])
        embedding, _ = recommender.backend.embed([user])
        top10 = search_k_tuning.annoy_titles(recommender.index, embedding, 10, recommender.search_k)[0]
        unfiltered_seen += len(set(top10) & recommender.seen[user])
    assert seen / returned == 0
    assert unfiltered_seen > 0, "without the filter retrieval returns already-rated movies: this test can fail"


@pytest.mark.serving
def test_healthz_reports_versions(api, recommender):
    reply = api.get("/healthz")
    assert reply.status_code == 200
    assert reply.json() == {
        "status": "ok",
        "backend": "in-process",
        "model_versions": {"query_tower": 1, "ranker": 1, "annoy_index": 1},
        "catalogue_size": recommender.catalogue_size,
    }


@pytest.mark.serving
def test_unknown_user_gets_the_popularity_fallback(api, recommender):
    reply = api.get("/recommend/no-such-user", params={"k": 3})
    assert reply.status_code == 200
    body = reply.json()
    assert body["known_user"] is False and body["fallback"] == "popularity" and "unknown user id" in body["warning"]
    assert [item["title"] for item in body["recommendations"]] == [t for t, _ in recommender.popular[:3]]
    counts = [item["ratings_in_training"] for item in body["recommendations"]]
    assert counts == sorted(counts, reverse=True) and counts[0] > 100, "the most rated movies of the training split"
    assert api.get("/recommend/42").json()["fallback"] is None


@pytest.mark.serving
@pytest.mark.parametrize(
    "url, status, message",
    [
        ("/recommend/", 404, "no endpoint"),
        ("/recommend", 404, "no endpoint"),
        ("/recommend/" + "9" * 65, 422, "65 characters"),
        ("/recommend/%20%20", 422, "non-empty"),
        ("/recommend/a%07b", 422, "control characters"),
        ("/recommend/42?k=0", 422, "k must be between 1 and"),
        ("/recommend/42?k=-5", 422, "k must be between 1 and"),
        ("/recommend/42?k=100000", 422, "k must be between 1 and"),
        ("/recommend/42?k=ten", 422, "valid integer"),
        ("/recommend/42?k=2.5", 422, "valid integer"),
        ("/recommend/42?k=", 422, "valid integer"),
    ],
)
def test_malformed_requests_get_4xx_json_errors(api, url, status, message):
    reply = api.get(url)
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert set(body) == {"error"} and message in body["error"], body
    assert "Traceback" not in reply.text


@pytest.mark.serving
def test_tf_serving_backend_unreachable_gives_503(exported):
    app = service.create_app(
        service.load_recommender(exported["base"], tf_serving=f"http://127.0.0.1:{launch.free_port()}", timeout_s=1.0)
    )
    client = TestClient(app)
    for url in ("/recommend/42", "/healthz"):
        reply = client.get(url)
        assert reply.status_code == 503, reply.text
        assert "unreachable" in reply.json()["error"]


@pytest.mark.serving
def test_tf_serving_backend_timeout_gives_503(exported, silent_server):
    recommender = service.load_recommender(
        exported["base"], tf_serving=f"http://127.0.0.1:{silent_server.port}", timeout_s=0.5
    )
    reply = TestClient(service.create_app(recommender)).get("/recommend/42")
    assert reply.status_code == 503
    assert "did not answer within 0.5 s" in reply.json()["error"]


@pytest.mark.serving
def test_grpc_tf_serving_backend_unreachable_gives_503(exported):
    recommender = service.load_recommender(
        exported["base"], tf_serving=f"grpc://127.0.0.1:{launch.free_port()}", timeout_s=1.0
    )
    reply = TestClient(service.create_app(recommender)).get("/recommend/42")
    assert reply.status_code == 503 and "unavailable" in reply.json()["error"]


@pytest.mark.serving
def test_versions_missing_for_the_index_is_a_startup_error(exported, tmp_path):
    base = tmp_path / "models"
    shutil.copytree(exported["base"] / annoy_export.ANNOY_DIR, base / annoy_export.ANNOY_DIR)
    shutil.copytree(exported["base"] / "ranker", base / "ranker")
    (base / "query_tower").mkdir()
    with pytest.raises(modelbase.ModelDirError, match=str((base / "query_tower" / "1").resolve())):
        service.load_recommender(base)
    shutil.copytree(exported["base"] / "query_tower", base / "query_tower", dirs_exist_ok=True)
    shutil.rmtree(base / "ranker")
    with pytest.raises(modelbase.ModelDirError, match=str((base / "ranker").resolve())):
        service.load_recommender(base)


def _history(exported):
    path = exported["base"] / annoy_export.ANNOY_DIR / "1" / annoy_export.HISTORY_FILE
    return json.loads(path.read_text())["seen"]


@pytest.mark.serving
def test_api_serves_over_the_loopback_from_the_command_line(exported):
    with launch.api_server(exported["base"]) as url:
        import requests

        health = requests.get(f"{url}/healthz", timeout=10)
        assert health.status_code == 200 and health.json()["backend"] == "in-process"
        reply = requests.get(f"{url}/recommend/42", params={"k": 5}, timeout=10)
        assert reply.status_code == 200 and len(reply.json()["recommendations"]) == 5
        seen = {user: set(titles) for user, titles in _history(exported).items()}
        result = loadgen.load_test(url, ["1", "2", "3"], concurrency=2, duration_s=1.0, max_requests=50, seen=seen)
        assert result["errors"] == 0 and 0 < result["requests"] <= 50, result["error_kinds"]
        assert result["returned_titles"] == 10 * result["requests"] and result["seen_share"] == 0
        assert result["p50_ms"] <= result["p99_ms"]


def _spawned_children(port: int) -> list[int]:
    """The worker processes uvicorn spawned for the API listening on ``port`` (Linux /proc)."""
    parents = subprocess.run(["pgrep", "-f", f"movierec.api serve .*--port {port}"], capture_output=True,
                             text=True).stdout.split()
    assert len(parents) == 1, f"expected one API parent process on port {port}, found {parents}"
    children = []
    for task in Path(f"/proc/{parents[0]}/task").iterdir():
        children += (task / "children").read_text().split()
    return [int(pid) for pid in children
            if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()]


@pytest.mark.serving
def test_two_server_processes_share_the_port_and_answer_as_one_does(exported, recommender):
    import requests

    users = ["1", "42", "943", "not-a-user"]
    expected = {user: [r["title"] for r in recommender.recommend(user, 5)["recommendations"]] for user in users}
    with launch.api_server(exported["base"], options=("--processes", "2")) as url:
        assert len(_spawned_children(int(url.rsplit(":", 1)[1]))) == 2
        for user in users:
            reply = requests.get(f"{url}/recommend/{user}", params={"k": 5}, timeout=10)
            assert reply.status_code == 200
            assert [r["title"] for r in reply.json()["recommendations"]] == expected[user], user
        result = loadgen.load_test(url, users[:3], concurrency=4, duration_s=1.0, max_requests=80)
        assert result["errors"] == 0 and result["requests"] > 0, result["error_kinds"]


@pytest.mark.serving
@pytest.mark.skipif(
    TF_SERVING_BINARY is None,
    reason="tensorflow_model_server is not on PATH (TF Serving cannot be installed on this machine); "
    "install it as lesson 07 section 8 shows to run the whole path against a real server",
)
def test_whole_path_against_a_real_tensorflow_model_server(exported, recommender):
    base = exported["base"]
    local = {
        name: tf.saved_model.load(str(base / name / "1")).signatures["serving_default"]
        for name in ("query_tower", "ranker")
    }
    users = ["42", "1", "not-a-user"]
    titles = ["Star Wars (1977)", "Fargo (1996)", "Heat (1995)"]
    with launch.model_server(base / "models.config") as urls:
        for client in (transport.TFServingRestClient(urls["rest"]), transport.TFServingGrpcClient(urls["grpc"])):
            assert client.model_versions("query_tower") == {1: "AVAILABLE"}
            got = client.predict("query_tower", {"user_id": users}, ["embedding", "known_user"], version=1)
            want = local["query_tower"](user_id=tf.constant(users))
            np.testing.assert_allclose(got["embedding"], want["embedding"].numpy(), rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(got["known_user"], want["known_user"].numpy())
            got = client.predict("ranker", {"user_id": users, "movie_title": titles}, ["score"])
            want = local["ranker"](user_id=tf.constant(users), movie_title=tf.constant(titles))
            np.testing.assert_allclose(got["score"], want["score"].numpy(), rtol=1e-5, atol=1e-6)
        for url in (urls["rest"], f"grpc://{urls['grpc']}"):
            remote = TestClient(service.create_app(service.load_recommender(base, tf_serving=url)))
            assert remote.get("/healthz").status_code == 200
            body = remote.get("/recommend/42", params={"k": 10}).json()
            assert body["backend"] == "tf-serving"
            expected = recommender.recommend("42", 10)["recommendations"]
            assert [r["title"] for r in body["recommendations"]] == [r["title"] for r in expected]


# ------------------------------------------------------------- lesson 07: config, labels, warm-up, metadata


def test_parse_model_config_reads_policies_and_labels():
    text = """model_config_list {
      config { name: "ranker" base_path: "/m/ranker" model_platform: "tensorflow"
               model_version_policy { specific { versions: 3 versions: 4 } }
               version_labels { key: "stable" value: 3 } version_labels { key: "canary" value: 4 } }
      config { name: "query_tower" base_path: "/m/query_tower" model_platform: "tensorflow" }
    }"""
    ranker, query = modelbase.parse_model_config(text)
    assert ranker == {"name": "ranker", "base_path": "/m/ranker", "platform": "tensorflow", "policy": "specific",
                      "versions": [3, 4], "labels": {"canary": 4, "stable": 3}}
    assert query["policy"] is None and query["labels"] == {}
    assert modelbase.parse_model_config(export.model_config_text("/models"))[0]["policy"] == "latest"
    with pytest.raises(ValueError, match="not a valid model config"):
        modelbase.parse_model_config('model_config_list { config { version_labels { key: "3" value: "stable" } } }')


def test_warmup_file_is_tf_servings_prediction_log_and_is_replayed(tmp_path):
    from tensorflow_serving.apis import prediction_log_pb2

    examples = [{"user_id": ["42"], "movie_title": ["Fargo (1996)"]},
                {"user_id": ["1", "2"], "movie_title": ["A", "B"]}]
    path = modelbase.write_warmup(tmp_path / "ranker" / "1", "ranker", examples)
    assert path == tmp_path / "ranker" / "1" / "assets.extra" / "tf_serving_warmup_requests"
    records = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]
    assert [r.WhichOneof("log_type") for r in records] == ["predict_log", "predict_log"]
    request = records[1].predict_log.request
    assert (request.model_spec.name, request.model_spec.signature_name) == ("ranker", "serving_default")
    assert tf.make_ndarray(request.inputs["movie_title"]).tolist() == [b"A", b"B"]
    calls = []
    assert modelbase.replay_warmup(path.parent.parent, lambda **inputs: calls.append(inputs)) == 2
    assert [sorted(c) for c in calls] == [["movie_title", "user_id"]] * 2
    assert modelbase.replay_warmup(tmp_path / "no-such-version", lambda **inputs: None) == 0
    with pytest.raises(ValueError, match="1 to 1000"):
        modelbase.write_warmup(tmp_path / "x", "ranker", [])


def test_metadata_response_is_tf_servings_json_for_the_savedmodel(tmp_path):
    servable = tf.Module()
    servable.table = tf.Variable(tf.ones([3, 4]))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="user_id")])
    def serve(user_id):
        rows = tf.zeros_like(tf.strings.length(user_id))
        return {"embedding": tf.gather(servable.table, rows), "n": tf.size(user_id)}

    servable.serve = serve
    path = modelbase.save_servable(servable, tmp_path / "query_tower" / "2")
    body = json.loads(json.dumps(modelbase.metadata_response(path, "query_tower", 2)))
    assert body["model_spec"] == {"name": "query_tower", "signature_name": "", "version": "2"}
    signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    assert signature["inputs"]["user_id"]["dtype"] == "DT_STRING"
    assert signature["inputs"]["user_id"]["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}]  # int64 as strings
    assert signature["inputs"]["user_id"]["tensor_shape"]["unknown_rank"] is False  # defaults printed, as TF Serving
    assert signature["outputs"]["embedding"]["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in signature["outputs"]["embedding"]["tensor_shape"]["dim"]] == ["-1", "4"]


@pytest.mark.serving
def test_every_exported_version_carries_warmup_requests_that_replay(exported):
    base = exported["base"]
    for name in export.SERVED_MODELS:
        version_dir = base / name / "1"
        assert (version_dir / modelbase.WARMUP_PATH).is_file(), f"{name} has no warm-up file"
        signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
        assert modelbase.replay_warmup(version_dir, signature) >= 2, f"{name}: its warm-up requests must run"


@pytest.mark.serving
def test_in_process_backend_replays_the_warmup_before_serving(recommender):
    assert recommender.backend.warmup_requests >= 4, "the query tower's and ranker's warm-up requests run at load"


@pytest.mark.serving
@pytest.mark.skipif(
    TF_SERVING_BINARY is None,
    reason="tensorflow_model_server is not on PATH (TF Serving cannot be installed on this machine); "
    "install it as lesson 07 section 8 shows to check the metadata endpoint and labels against a real server",
)
def test_metadata_and_labels_against_a_real_tensorflow_model_server(exported, tmp_path):
    import requests

    base = exported["base"]
    config = tmp_path / "pinned.config"
    config.write_text(
        f'model_config_list {{ config {{ name: "ranker" base_path: "{(base / "ranker").resolve()}" '
        'model_platform: "tensorflow" model_version_policy { specific { versions: 1 } } '
        'version_labels { key: "stable" value: 1 } } }\n', encoding="utf-8")
    with launch.model_server(config) as urls:
        served = requests.get(f"{urls['rest']}/v1/models/ranker/versions/1/metadata", timeout=10).json()
        offline = modelbase.metadata_response(base / "ranker" / "1", "ranker", 1)
        def shapes(body):  # dtype and sizes of every input and output of serving_default
            signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
            return {side: {name: (t["dtype"], [d["size"] for d in t["tensor_shape"]["dim"]])
                           for name, t in signature[side].items()} for side in ("inputs", "outputs")}

        assert shapes(served) == shapes(json.loads(json.dumps(offline)))
        body = {"inputs": {"user_id": ["42"], "movie_title": ["Fargo (1996)"]}}
        by_label = requests.post(f"{urls['rest']}/v1/models/ranker/labels/stable:predict", json=body, timeout=10)
        by_version = requests.post(f"{urls['rest']}/v1/models/ranker/versions/1:predict", json=body, timeout=10)
        assert by_label.status_code == 200 and by_label.json() == by_version.json()
        missing = requests.post(f"{urls['rest']}/v1/models/ranker/labels/canary:predict", json=body, timeout=10)
        assert missing.status_code >= 400 and "error" in missing.json()
