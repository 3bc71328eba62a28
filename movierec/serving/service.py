# DO NOT EDIT — generated from solutions/08_service.py by `python -m grader build`: edit the lesson instead.
"""Building blocks from lesson 08_service: Lesson 08 — The recommendation service.

The cells of solutions/08_service.py tagged ``export`` whose first line
is ``#| export serving.service``, in lesson order; each block
names the section of the lesson that explains it.
"""

import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from movierec.annoy import MovieIndex
from movierec.serving.clients import ServingError, ServingUnavailable
from movierec.serving.export import N_CANDIDATES
from movierec.serving.index import ANNOY_DIR, ANNOY_FILE, HISTORY_FILE, TUNING_FILE
from movierec.serving.modelbase import ModelDirError, latest_version, replay_warmup
from movierec.serving.transport import TFServingBackend


# --- from solutions/08_service.py, section: 3. Backends: where the models run
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
        ranker_dir = base / "ranker" / str(ranker_version)
        self._ranker_model = tf.saved_model.load(str(ranker_dir))
        self._embed = self._query_model.signatures["serving_default"]
        self._score = self._ranker_model.signatures["serving_default"]
        self._versions = {"query_tower": query_version, "ranker": ranker_version}
        # What TF Serving does before a version takes traffic (lesson 07, section 9).
        self.warmup_requests = replay_warmup(query_dir, self._embed) + replay_warmup(ranker_dir, self._score)

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


def load_backend(base: str | Path, *, query_version: int, tf_serving: str | None = None, timeout_s: float = 2.0):
    """``TFServingBackend`` when a server URL is given, else the embedded ``InProcessBackend``."""
    if tf_serving:
        return TFServingBackend(tf_serving, query_version=query_version, timeout_s=timeout_s)
    return InProcessBackend(base, query_version=query_version)


# --- from solutions/08_service.py, section: 4. The handler and the app
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
