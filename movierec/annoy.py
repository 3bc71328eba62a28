# DO NOT EDIT — generated from solutions/06_annoy.py by `python -m grader build`: edit the lesson instead.
"""Building blocks from lesson 06_annoy: Lesson 06 — Annoy search.

The cells tagged ``export`` in solutions/06_annoy.py, in lesson order; each block
names the section of the lesson that explains it.
"""

import contextlib
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import annoy
import numpy as np

# --- from solutions/06_annoy.py, section: 1. Exact top-k costs $O(N \cdot d)$ per query
METRICS = ("dot", "angular", "euclidean")


def exact_scores(queries: np.ndarray, items: np.ndarray, metric: str = "dot") -> np.ndarray:
    """Score every item for every query: the ``(n_queries, n_items)`` matrix exact search ranks.

    Higher is better: the inner product for ``dot``, the cosine for ``angular`` and the
    negative Euclidean distance for ``euclidean`` (the conventions of :class:`MovieIndex`).
    """
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    items = np.asarray(items, dtype=np.float32)
    if metric == "dot":
        return queries @ items.T
    if metric == "angular":
        q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
        x = items / np.maximum(np.linalg.norm(items, axis=1, keepdims=True), 1e-12)
        return q @ x.T
    if metric == "euclidean":
        squared = (queries**2).sum(1)[:, None] - 2.0 * queries @ items.T + (items**2).sum(1)[None, :]
        return -np.sqrt(np.maximum(squared, 0.0))
    raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def exact_top_k(
    queries: np.ndarray, items: np.ndarray, k: int = 10, metric: str = "dot", batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by brute force: ``(scores, ids)``, best first.

    This is what TFRS's ``BruteForce`` layer computes, at $O(N d)$ per query. A batch of
    queries ``(n_queries, d)`` gives two ``(n_queries, k)`` arrays and is scored
    ``batch_size`` queries at a time to bound memory; a single query ``(d,)`` gives two
    ``(k,)`` arrays. Equal scores are ordered by item id, so the answer is deterministic.
    """
    queries = np.asarray(queries, dtype=np.float32)
    items = np.asarray(items, dtype=np.float32)
    if not 1 <= k <= len(items):
        raise ValueError(f"k must be between 1 and the number of items ({len(items)}), got {k}")
    if queries.ndim == 1:  # one query: skip the batch machinery, which costs more than the search
        scores = items @ queries if metric == "dot" else exact_scores(queries, items, metric)[0]
        top = np.argpartition(scores, -k)[-k:]
        order = np.lexsort((top, -scores[top]))
        return scores[top[order]], top[order].astype(np.int64)
    all_scores, all_ids = [], []
    for start in range(0, len(queries), batch_size):
        scores = exact_scores(queries[start : start + batch_size], items, metric)
        part = np.argpartition(scores, -k, axis=1)[:, -k:]
        part_scores = np.take_along_axis(scores, part, axis=1)
        order = np.lexsort((part, -part_scores), axis=1)
        all_ids.append(np.take_along_axis(part, order, axis=1))
        all_scores.append(np.take_along_axis(part_scores, order, axis=1))
    return np.concatenate(all_scores), np.concatenate(all_ids).astype(np.int64)


def queries_per_second(
    run: Callable[[], object], n_queries: int, min_seconds: float = 0.3, max_repeats: int = 5
) -> float:
    """Single-core throughput of ``run``, a function that answers ``n_queries`` queries.

    Time is the CPU time of the calling thread (``time.thread_time``), not wall-clock
    time: on a shared machine the wall clock also counts the moments when other
    programs held the core, which makes timings swing wildly. numpy's BLAS library is
    limited to one thread while timing (with ``threadpoolctl``), so all of numpy's work
    runs on the calling thread and numpy and Annoy (single-threaded) are compared core
    for core. Without ``threadpoolctl``, the CPU time of the whole process is used. The
    best of up to ``max_repeats`` runs is returned; runs stop once ``min_seconds`` of
    CPU time have been spent (after at least two runs, unless the first one took longer).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # still works: count the CPU time of every thread of the process
        one_thread, clock = contextlib.nullcontext(), time.process_time
    else:
        one_thread, clock = threadpool_limits(limits=1), time.thread_time
    best, total, repeats = float("inf"), 0.0, 0
    with one_thread:
        while repeats < max_repeats and (repeats < 2 or total < min_seconds):
            started = clock()
            run()
            elapsed = max(clock() - started, 1e-9)
            best, total, repeats = min(best, elapsed), total + elapsed, repeats + 1
            if repeats == 1 and elapsed > min_seconds:
                break
    return n_queries / best


# --- from solutions/06_annoy.py, section: The library's version: `recall_from_vectors`
def recall_from_vectors(found_ids, items: np.ndarray, queries: np.ndarray, k: int = 10, metric: str = "dot") -> float:
    """Tie-aware recall@k of ``found_ids`` (one id list per query), scoring items against queries in float64.

    A returned item is a hit when its exact score is at least the query's k-th best exact
    score minus ``1e-6 * max(1, |k-th best|)``; only the first ``k`` ids count, each
    distinct id once, and the hits are divided by ``k`` for every query (a short list
    has fewer hits). Scores follow :func:`exact_scores` (``dot``, ``angular``, ``euclidean``).
    """
    items = np.asarray(items, dtype=np.float64)
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float64))
    if len(found_ids) != len(queries):
        raise ValueError(f"{len(found_ids)} result lists for {len(queries)} queries")
    if not 1 <= k <= len(items):
        raise ValueError(f"k must be between 1 and the number of items ({len(items)}), got {k}")
    hits = 0
    for query, ids in zip(queries, found_ids):
        if metric == "dot":
            scores = items @ query
        elif metric == "angular":
            scores = items @ query / np.maximum(np.linalg.norm(items, axis=1) * np.linalg.norm(query), 1e-300)
        elif metric == "euclidean":
            scores = -np.linalg.norm(items - query, axis=1)
        else:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        best = np.sort(scores)[::-1][k - 1]
        returned = np.array(sorted({int(i) for i in list(ids)[:k]}), dtype=np.int64)
        hits += int(np.count_nonzero(scores[returned] >= best - 1e-6 * max(1.0, abs(best)))) if len(returned) else 0
    return hits / (k * len(queries))


# --- from solutions/06_annoy.py, section: 7. A guarded index for the rest of the course
SIDECAR_SUFFIX = ".json"
SIDECAR_FORMAT = "movierec-annoy/1"


class IndexFileError(ValueError):
    """An index file is damaged, or does not match its sidecar or what the caller expects."""


def node_bytes(metric: str, dim: int) -> int:
    """Bytes that one node of a ``dim``-dimensional Annoy index takes on disk.

    Annoy stores every item and every split as a fixed-size record: a 4-byte count, two
    4-byte child ids and ``dim`` float32 values, plus one more float for ``dot`` and
    ``euclidean``. A valid index file is therefore a whole number of nodes.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    return (12 if metric == "angular" else 16) + 4 * dim


def distances_to_scores(distances: list[float] | np.ndarray, metric: str) -> np.ndarray:
    """Turn Annoy's distances into scores where higher means more similar.

    ``dot`` distances already are inner products; an ``angular`` distance
    ``sqrt(2 - 2 cos)`` becomes the cosine ``1 - d**2 / 2``; ``euclidean`` is negated.
    """
    distances = np.asarray(distances, dtype=np.float32)
    if metric == "dot":
        return distances
    if metric == "angular":
        return (1.0 - distances**2 / 2.0).astype(np.float32)
    if metric == "euclidean":
        return -distances
    raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def sidecar_path(path: str | Path) -> Path:
    """Where the JSON sidecar of an index file lives: ``movies.ann`` -> ``movies.ann.json``."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _as_text(label: Any) -> str:
    """Labels are kept as text; titles come out of TensorFlow as bytes."""
    if isinstance(label, np.generic):
        label = label.item()
    return label.decode("utf-8") if isinstance(label, bytes) else str(label)


class MovieIndex:
    """An Annoy index over item vectors that knows its labels and guards every input.

    Annoy trusts its caller: a NaN query, a truncated file or a ``k`` larger than the
    index give wrong or short answers without an error. ``MovieIndex`` checks each case
    and raises an exception that names the problem. Searches return ``(scores,
    positions)``: position ``p`` is row ``p`` of the indexed matrix, labelled ``labels[p]``.
    """

    def __init__(
        self,
        index: annoy.AnnoyIndex,
        labels: list[Any] | np.ndarray,
        *,
        metric: str,
        n_trees: int,
        seed: int,
        path: Path | None = None,
    ) -> None:
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        if len(labels) != index.get_n_items():
            raise ValueError(f"{len(labels)} labels for an index of {index.get_n_items()} items")
        self.annoy = index
        self.labels = np.array([_as_text(label) for label in labels], dtype=object)
        self.metric = metric
        self.dim = index.f
        self.n_trees = n_trees
        self.seed = seed
        self.path = path

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        labels: list[Any] | np.ndarray | None = None,
        *,
        metric: str = "dot",
        n_trees: int = 10,
        seed: int = 42,
    ) -> "MovieIndex":
        """Index the rows of an ``(n_items, dim)`` matrix; ``labels[i]`` names row ``i``.

        Single-threaded and seeded: the same vectors always give the same trees, so
        search results (and the recall measured on them) repeat exactly.
        """
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] == 0 or vectors.shape[1] == 0:
            raise ValueError(f"vectors must be a non-empty (n_items, dim) matrix, got shape {vectors.shape}")
        if not np.isfinite(vectors).all():
            raise ValueError("vectors contain NaN or infinity; Annoy would index garbage")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        if n_trees < 1:
            raise ValueError(f"n_trees must be at least 1, got {n_trees}")
        labels = list(range(len(vectors))) if labels is None else list(labels)
        if len(labels) != len(vectors):
            raise ValueError(f"got {len(labels)} labels for {len(vectors)} vectors")
        index = annoy.AnnoyIndex(vectors.shape[1], metric)
        index.set_seed(seed)
        for position, vector in enumerate(vectors):
            index.add_item(position, vector)
        index.build(n_trees, n_jobs=1)
        return cls(index, labels, metric=metric, n_trees=n_trees, seed=seed)

    def __len__(self) -> int:
        return self.annoy.get_n_items()

    def __repr__(self) -> str:
        where = f", path='{self.path}'" if self.path else ""
        return f"MovieIndex({len(self)} items, dim={self.dim}, metric='{self.metric}', n_trees={self.n_trees}{where})"

    def position(self, label: Any) -> int:
        """Position of the first item labelled ``label``; ``KeyError`` if there is none."""
        matches = np.flatnonzero(self.labels == _as_text(label))
        if len(matches) == 0:
            raise KeyError(f"no item labelled {_as_text(label)!r} in this index")
        return int(matches[0])

    def vector(self, position: int) -> np.ndarray:
        """The stored vector of the item at ``position``."""
        if not 0 <= position < len(self):
            raise IndexError(f"position {position} is outside this index of {len(self)} items")
        return np.asarray(self.annoy.get_item_vector(int(position)), dtype=np.float32)

    def search(self, queries: np.ndarray, k: int = 10, search_k: int = -1) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-k for one query vector ``(dim,)`` or a batch ``(n, dim)``.

        Returns ``(scores, positions)``, each ``(n, k)`` (``n = 1`` for a single
        vector), best first, always exactly ``k`` per query. ``search_k`` is how many
        candidates Annoy collects from the trees; -1 means Annoy's default,
        ``k * n_trees``.
        """
        queries = self._check_queries(queries)
        k = self._check_k(k)
        scores = np.empty((len(queries), k), dtype=np.float32)
        positions = np.empty((len(queries), k), dtype=np.int64)
        for row, query in enumerate(queries):
            found, distances = self._complete(query.tolist(), k, search_k)
            positions[row] = found
            scores[row] = distances_to_scores(distances, self.metric)
        return scores, positions

    def _complete(self, query: list[float], k: int, search_k: int) -> tuple[list[int], list[float]]:
        """Ask Annoy for k items; if it comes back short, widen the search and ask again.

        With a small ``search_k`` the leaves Annoy visits can hold fewer than ``k``
        distinct items, and Annoy then returns a short list without saying so. A
        budget of ``n_trees * n_items`` visits every leaf, which always finds all items.
        """
        exhaustive = self.n_trees * len(self) + k
        budget = search_k
        while True:
            found, distances = self.annoy.get_nns_by_vector(query, k, search_k=budget, include_distances=True)
            if len(found) >= k or budget >= exhaustive:
                break
            budget = min(exhaustive, 4 * max(budget, k * self.n_trees))
        if len(found) < k:
            raise RuntimeError(f"Annoy returned {len(found)} of {k} items even with an exhaustive search")
        return found, distances

    def save(self, path: str | Path) -> Path:
        """Write the index to ``path`` and its JSON sidecar to ``<path>.json``; return ``path``.

        Annoy's file holds only the nodes: not the dimension, the metric or the labels.
        The sidecar records them, with the file size, so ``load`` can refuse a file that
        is truncated, overwritten or built for other vectors.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.annoy.save(str(path)):
            raise OSError(f"Annoy could not write {path}")
        meta = {
            "format": SIDECAR_FORMAT,
            "dim": self.dim,
            "metric": self.metric,
            "n_items": len(self),
            "n_trees": self.n_trees,
            "seed": self.seed,
            "bytes": path.stat().st_size,
            "labels": [str(label) for label in self.labels],
        }
        sidecar_path(path).write_text(json.dumps(meta), encoding="utf-8")
        self.path = path
        return path

    @classmethod
    def load(
        cls, path: str | Path, *, dim: int | None = None, metric: str | None = None, prefault: bool = False
    ) -> "MovieIndex":
        """Memory-map an index saved by :meth:`save`, after checking it against its sidecar.

        ``dim`` and ``metric``, when given, are what the caller needs — for example the
        query tower's output size — and a mismatch raises :class:`IndexFileError`, as
        does a file whose size is not what was saved. A missing file or sidecar raises
        ``FileNotFoundError``.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no Annoy index file at {path}")
        side = sidecar_path(path)
        if not side.is_file():
            raise FileNotFoundError(f"{path} has no sidecar {side.name}; save indexes with MovieIndex.save")
        try:
            meta = json.loads(side.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise IndexFileError(f"sidecar {side} is not valid JSON: {exc}") from None
        if not isinstance(meta, dict) or meta.get("format") != SIDECAR_FORMAT:
            raise IndexFileError(f"{side} is not a {SIDECAR_FORMAT} sidecar")
        missing = [key for key in ("dim", "metric", "n_items", "n_trees", "seed", "bytes", "labels") if key not in meta]
        if missing:
            raise IndexFileError(f"sidecar {side} lacks {', '.join(missing)}")
        if dim is not None and dim != meta["dim"]:
            raise IndexFileError(
                f"{path} holds {meta['dim']}-dimensional vectors, but {dim}-dimensional ones were expected"
            )
        if metric is not None and metric != meta["metric"]:
            raise IndexFileError(f"{path} was built with metric '{meta['metric']}', but '{metric}' was expected")
        size = path.stat().st_size
        if size != meta["bytes"]:
            raise IndexFileError(
                f"{path} is {size:,} bytes but was saved as {meta['bytes']:,} bytes: truncated or overwritten"
            )
        if size == 0 or size % node_bytes(meta["metric"], meta["dim"]):
            raise IndexFileError(
                f"{path} ({size:,} bytes) is not a whole number of {meta['dim']}-dimensional '{meta['metric']}' nodes"
            )
        index = annoy.AnnoyIndex(meta["dim"], meta["metric"])
        try:
            index.load(str(path), prefault=prefault)
        except OSError as exc:
            raise IndexFileError(f"Annoy could not load {path}: {exc}") from None
        if index.get_n_items() != meta["n_items"] or index.get_n_trees() != meta["n_trees"]:
            raise IndexFileError(
                f"{path} holds {index.get_n_items()} items in {index.get_n_trees()} trees, but its sidecar "
                f"says {meta['n_items']} items in {meta['n_trees']} trees"
            )
        return cls(index, meta["labels"], metric=meta["metric"], n_trees=meta["n_trees"], seed=meta["seed"], path=path)

    def retrieval(
        self, query_model: Callable[[Any], Any] | None = None, k: int = 10, search_k: int = -1
    ) -> "AnnoyRetrieval":
        """A ``BruteForce``-shaped retrieval callable backed by this index (see :class:`AnnoyRetrieval`)."""
        return AnnoyRetrieval(self, query_model, k=k, search_k=search_k)

    def _check_queries(self, queries: Any) -> np.ndarray:
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None, :]
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(
                f"query vectors must have {self.dim} dimensions (the index's dim), got shape {queries.shape}"
            )
        if not np.isfinite(queries).all():
            raise ValueError("query vectors contain NaN or infinity")
        return queries

    def _check_k(self, k: int) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= len(self):
            raise ValueError(f"k must be an integer between 1 and the number of indexed items ({len(self)}), got {k!r}")
        return int(k)


class AnnoyRetrieval:
    """Top-k retrieval with the call shape of ``tfrs.layers.factorized_top_k.BruteForce``.

    ``retrieval(features)`` runs ``query_model`` on the features (any batch the query
    tower accepts), searches the index and returns ``(scores, identifiers)``: a float32
    tensor and a string tensor, both ``(batch, k)``, best first — what ``BruteForce``
    returns when indexed with titles. With ``query_model=None`` it takes query
    embeddings directly.
    """

    def __init__(
        self,
        index: MovieIndex,
        query_model: Callable[[Any], Any] | None = None,
        *,
        k: int = 10,
        search_k: int = -1,
    ) -> None:
        self.index = index
        self.query_model = query_model
        self.k = index._check_k(k)
        self.search_k = search_k

    def __call__(self, queries: Any, k: int | None = None) -> tuple[Any, Any]:
        import tensorflow as tf

        embeddings = self.query_model(queries) if self.query_model is not None else queries
        if hasattr(embeddings, "numpy"):
            embeddings = embeddings.numpy()
        scores, positions = self.index.search(embeddings, k=self.k if k is None else k, search_k=self.search_k)
        return tf.constant(scores), tf.constant(self.index.labels[positions].astype(str))


# --- from solutions/06_annoy.py, section: 9. Choosing `search_k`
def first_reaching(measure: Callable[[int], float], candidates: Iterable[int], target: float) -> int:
    """The smallest of ``candidates`` whose ``measure`` is at least ``target``, found by bisection.

    ``measure`` must never decrease as its argument grows (recall as ``search_k`` grows);
    it is called at most ``1 + ceil(log2(n))`` times for ``n`` distinct candidates, and only
    at candidate values. ``ValueError`` when there are no candidates or none reaches ``target``.
    """
    values = sorted({int(value) for value in candidates})
    if not values:
        raise ValueError("no candidates to choose from")
    if measure(values[-1]) < target:
        raise ValueError(f"even the largest candidate, {values[-1]}, does not reach {target}")
    low, high = 0, len(values) - 1  # the answer's position lies in [low, high]
    while low < high:
        middle = (low + high) // 2
        if measure(values[middle]) >= target:
            high = middle
        else:
            low = middle + 1
    return values[low]


# --- from solutions/06_annoy.py, section: 12. When does ANN pay off?
def synthetic_vectors(
    n_items: int,
    n_queries: int,
    dim: int = 32,
    *,
    clustered: bool = True,
    n_centres: int = 1_000,
    spread: float = 0.5,
    seed: int = 42,
) -> tuple[np.ndarray, np.ndarray]:
    """Random float32 ``(items, queries)`` for search experiments, reproducible from ``seed``.

    ``clustered=True`` draws every vector around one of ``n_centres`` standard-normal
    centres, with standard deviation ``spread`` per coordinate; ``clustered=False``
    draws plain standard-normal vectors, which have no structure a tree can exploit.
    """
    rng = np.random.default_rng(seed)

    def draw(count: int, centres: np.ndarray | None) -> np.ndarray:
        points = rng.standard_normal((count, dim), dtype=np.float32)
        if centres is None:
            return points
        points *= spread
        points += centres[rng.integers(0, len(centres), size=count)]
        return points

    centres = rng.standard_normal((n_centres, dim), dtype=np.float32) if clustered else None
    return draw(n_items, centres), draw(n_queries, centres)
