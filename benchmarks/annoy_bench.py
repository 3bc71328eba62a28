"""Annoy against exact numpy search: when does approximate nearest-neighbour search pay off?

One run measures, on this machine, for several item sets:

* ``movielens``: the 1,682 movie embeddings of the lesson 04 retrieval model (trained
  here), queried with the query tower's embeddings of held-out test ratings;
* ``clustered_100k`` / ``clustered_1m``: 32-dimensional float32 vectors drawn around
  1,000 random centres (``movierec.annoy.synthetic_vectors``), the kind of structure
  learned embeddings tend to have;
* ``gaussian_100k`` / ``gaussian_1m``: unclustered standard-normal vectors, the hard
  case for space-partitioning trees.

For each item set it times exact top-10 search with numpy (one query at a time, and in
blocks of queries), then builds Annoy forests (``metric="dot"``, seeded, one thread)
over a grid of ``n_trees`` and queries them over a grid of ``search_k``, recording
build seconds, index bytes, recall@10 and single-thread queries per second.

Query throughput is measured in CPU time of the querying thread
(``movierec.annoy.queries_per_second``), with numpy's BLAS limited to one thread: on a
shared machine wall-clock timings swing with the load, CPU time barely does. Build
times are given both as wall-clock and as process CPU seconds (Annoy builds in a
worker thread).

Recall counts ties as hits: a returned item is a hit when its exact score (float64) is
at least the k-th best exact score minus ``1e-6 * max(1, |k-th score|)``. Movies that
share a vector (MovieLens lists 18 films twice under one title) are then
interchangeable, as they should be.

Usage (from the repository root; the machine is shared, so be nice)::

    nice -n 10 python -m benchmarks.annoy_bench           # full run, about 10 minutes on 2 idle cores
    nice -n 10 python -m benchmarks.annoy_bench --quick   # smoke run, about a minute

It writes ``build/benchmarks/annoy_bench.json`` and ``annoy_bench.png``
(``annoy_bench_quick.*`` with ``--quick``) and prints a table.
"""

import os

# One BLAS thread, set before numpy is imported: the comparison is per core.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import math
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import annoy
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/annoy_bench.py` finds movierec too
    sys.path.insert(0, str(ROOT))

from movierec.annoy import exact_top_k, queries_per_second, synthetic_vectors  # noqa: E402

K = 10
TARGET_RECALL = 0.95
SEED = 42
DIM = 32
REFERENCE_BYTES = 256 * 2**20  # float64 reference scores computed per block of queries
QUERY_BLOCK = 64  # exact batched search: queries per block
ITEM_BLOCK = 32_768  # exact batched search: items per block (64 x 32,768 float32 scores = 8 MiB)


@dataclass
class Setting:
    """One (n_trees, search_k) point of the grid."""

    n_trees: int
    search_k: int
    build_seconds: float
    build_cpu_seconds: float
    index_bytes: int
    recall_at_10: float
    qps: float
    speedup_vs_exact_single: float
    speedup_vs_exact_batched: float


@dataclass
class ItemSet:
    """All measurements for one item set."""

    name: str
    description: str
    n_items: int
    dim: int
    n_queries: int
    vector_bytes: int
    exact_single_qps: float
    exact_batched_qps: float
    exact_query_block: int
    settings: list[Setting] = field(default_factory=list)

    def best(self, target: float = TARGET_RECALL) -> Setting | None:
        """The fastest setting whose recall@10 reaches ``target`` (None if none does)."""
        good = [s for s in self.settings if s.recall_at_10 >= target]
        return max(good, key=lambda s: s.qps) if good else None


# ---------------------------------------------------------------------------- data


def movielens(n_queries: int, quick: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """Movie and query embeddings from the lesson 04 feature-rich retrieval model.

    The model is trained here on the course's seeded 80/20 split (one epoch with
    ``--quick``); the queries are the query tower's output for the first test ratings.
    """
    from movierec.setup import setup_lesson

    setup_lesson()
    from movierec.dataset import load_movies, load_ratings, random_split
    from movierec.preprocessing import CANDIDATE_FEATURES, QUERY_FEATURES, read_features
    from movierec.retrieval import candidate_embeddings, query_embeddings, train_retrieval_model

    movies = read_features(load_movies())
    train, validation, test = random_split(load_ratings())
    train = train.concatenate(validation)  # nothing is tuned on validation here
    train_features = read_features(train, QUERY_FEATURES + CANDIDATE_FEATURES)
    model = train_retrieval_model(train_features, movies, features=True, epochs=1 if quick else None)
    _titles, items = candidate_embeddings(model, movies)
    items = np.ascontiguousarray(items, dtype=np.float32)
    queries = query_embeddings(model, read_features(test.take(n_queries), QUERY_FEATURES))
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    shared = len(items) - len(np.unique(items, axis=0))
    return items, queries, (
        f"{len(items):,} movie embeddings of the feature-rich retrieval model "
        f"(trained in {model.train_seconds:.0f} s; {shared} movies repeat another's vector)"
    )


# ---------------------------------------------------------------------------- exact search


def exact_reference(items: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    """The k-th best exact score of every query, in float64: the recall threshold."""
    items64 = items.astype(np.float64)
    kth = np.empty(len(queries))
    block = max(1, REFERENCE_BYTES // (8 * len(items)))
    for start in range(0, len(queries), block):
        scores = queries[start : start + block].astype(np.float64) @ items64.T
        kth[start : start + block] = np.partition(scores, -k, axis=1)[:, -k]
    return kth


def recall_at_k(found: list, items: np.ndarray, queries: np.ndarray, kth: np.ndarray, k: int = K) -> float:
    """Tie-aware recall@k: the share of the k slots holding a distinct item scoring >= the k-th best."""
    hits = 0
    for row, ids in enumerate(found):
        ids = np.unique(np.asarray(ids[:k], dtype=np.int64))
        if len(ids):
            scores = items[ids].astype(np.float64) @ queries[row].astype(np.float64)
            hits += int(np.sum(scores >= kth[row] - 1e-6 * max(1.0, abs(kth[row]))))
    return hits / (k * len(found))


def exact_single(items: np.ndarray, queries: np.ndarray, k: int = K) -> list[np.ndarray]:
    """Exact top-k one query at a time with ``movierec.annoy.exact_top_k``, as a server answers requests."""
    return [exact_top_k(query, items, k)[1] for query in queries]


def exact_batched(items: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    """Exact top-k for blocks of queries against blocks of items, merging a running top-k.

    Blocking keeps each score matrix small (``QUERY_BLOCK x ITEM_BLOCK`` floats). One
    ``(64, 1,000,000)`` matrix plus its ``argpartition`` indices would be 768 MB, and
    the search would spend its time allocating and paging memory.
    """
    answers = []
    for q_start in range(0, len(queries), QUERY_BLOCK):
        block = queries[q_start : q_start + QUERY_BLOCK]
        best_scores = np.full((len(block), k), -np.inf, dtype=np.float32)
        best_ids = np.zeros((len(block), k), dtype=np.int64)
        for i_start in range(0, len(items), ITEM_BLOCK):
            scores = block @ items[i_start : i_start + ITEM_BLOCK].T
            top = np.argpartition(scores, -min(k, scores.shape[1]), axis=1)[:, -k:]
            merged_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, axis=1)], axis=1)
            merged_ids = np.concatenate([best_ids, top + i_start], axis=1)
            keep = np.argpartition(merged_scores, -k, axis=1)[:, -k:]
            best_scores = np.take_along_axis(merged_scores, keep, axis=1)
            best_ids = np.take_along_axis(merged_ids, keep, axis=1)
        order = np.argsort(-best_scores, axis=1)
        answers.append(np.take_along_axis(best_ids, order, axis=1))
    return np.concatenate(answers)


# ---------------------------------------------------------------------------- Annoy


def build_annoy(items: np.ndarray, n_trees: int, workdir: Path) -> tuple[annoy.AnnoyIndex, float, float, int]:
    """Build a seeded single-threaded ``dot`` forest: the index, wall and CPU build seconds, file size."""
    started, cpu_started = time.perf_counter(), time.process_time()
    index = annoy.AnnoyIndex(items.shape[1], "dot")
    index.set_seed(SEED)
    for position, vector in enumerate(items):
        index.add_item(position, vector)
    index.build(n_trees, n_jobs=1)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    path = workdir / f"bench-{n_trees}.ann"
    index.save(str(path))  # Annoy then re-opens the saved file, memory-mapped
    return index, seconds, cpu_seconds, path.stat().st_size


def annoy_queries(index: annoy.AnnoyIndex, query_lists: list[list[float]], search_k: int) -> list[list[int]]:
    """Answer each query separately with raw Annoy: the loop that is timed."""
    return [index.get_nns_by_vector(q, K, search_k=search_k) for q in query_lists]


def say(message: str) -> None:
    """Print progress at once, even when the output goes to a file."""
    print(message, flush=True)


def bench_item_set(
    name: str,
    description: str,
    items: np.ndarray,
    queries: np.ndarray,
    tree_grid: list[int],
    search_grid: list[int],
    workdir: Path,
    log: Callable[[str], None] = say,
) -> ItemSet:
    """Exact baselines, then every (n_trees, search_k) of the grid, for one item set."""
    items = np.ascontiguousarray(items, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    log(f"\n== {name}: {description}")
    kth = exact_reference(items, queries)
    for exact in (exact_single(items, queries[:20]), exact_batched(items, queries[:20])):
        agreement = recall_at_k(list(exact), items, queries[:20], kth[:20])
        assert agreement >= 0.99, f"exact search disagrees with the float64 reference (recall {agreement:.3f})"
    single = queries_per_second(partial(exact_single, items, queries), len(queries))
    batched = queries_per_second(partial(exact_batched, items, queries), len(queries))
    log(f"   exact numpy: {single:,.0f} q/s one query at a time, {batched:,.0f} q/s in blocks of {QUERY_BLOCK}")
    result = ItemSet(name, description, len(items), items.shape[1], len(queries), items.nbytes,
                     single, batched, QUERY_BLOCK)
    query_lists = [q.tolist() for q in queries]  # Annoy's fastest input: plain Python lists
    for n_trees in tree_grid:
        index, build_seconds, build_cpu, size = build_annoy(items, n_trees, workdir)
        log(f"   n_trees={n_trees}: built in {build_seconds:.1f} s ({build_cpu:.1f} CPU-s), {size / 2**20:,.1f} MiB")
        for search_k in search_grid:
            recall = recall_at_k(annoy_queries(index, query_lists, search_k), items, queries, kth)
            qps = queries_per_second(partial(annoy_queries, index, query_lists, search_k), len(queries))
            setting = Setting(n_trees, search_k, build_seconds, build_cpu, size, recall, qps,
                              qps / single, qps / batched)
            result.settings.append(setting)
            log(f"      search_k={search_k:>7,}: recall@10={recall:.3f} {qps:>9,.0f} q/s ({qps / single:6.1f}x exact)")
            if recall >= 0.999 or (recall >= TARGET_RECALL and qps < single):
                break  # saturated, or already slower than exact search: larger search_k only costs time
        index.unload()
        for leftover in workdir.glob("*.ann"):
            leftover.unlink()
    return result


# ---------------------------------------------------------------------------- report


def plan(quick: bool) -> dict:
    """Item-set sizes and grids of the full and the quick run."""
    if quick:
        return {
            "sizes": {"20k": 20_000},
            "synthetic_queries": 100,
            "clustered_trees": [5, 20],
            "gaussian_trees": [20],
            "synthetic_search_k": [100, 1_000, 10_000],
            "movielens_queries": 200,
            "movielens_trees": [1, 10],
            "movielens_search_k": [10, 100, 1_000],
        }
    return {
        "sizes": {"100k": 100_000, "1m": 1_000_000},
        "synthetic_queries": 200,
        "clustered_trees": [10, 20],
        "gaussian_trees": [20],
        "synthetic_search_k": [300, 1_000, 2_000, 5_000, 10_000, 30_000, 100_000, 300_000],
        "movielens_queries": 1_000,
        "movielens_trees": [1, 3, 10, 30],
        "movielens_search_k": [10, 30, 100, 300, 1_000, 3_000, 10_000],
    }


def table(sets: list[ItemSet]) -> str:
    """A plain-text table of every measurement; * marks the fastest setting with recall >= target."""
    lines = [
        f"{'item set':<16}{'n_trees':>11}{'search_k':>10}{'build CPU-s':>12}{'MiB':>9}"
        f"{'recall@10':>10}{'q/s':>10}{'vs exact':>10}{'vs batch':>10}"
    ]
    for item_set in sets:
        single, batched = item_set.exact_single_qps, item_set.exact_batched_qps
        lines.append(
            f"{item_set.name:<16}{'exact 1-by-1':>11}{'':>10}{'':>12}{item_set.vector_bytes / 2**20:>9.1f}"
            f"{1.0:>10.3f}{single:>10,.0f}{1.0:>9.2f}x{single / batched:>9.2f}x"
        )
        lines.append(
            f"{'':<16}{'exact batch':>11}{'':>10}{'':>12}{'':>9}{1.0:>10.3f}{batched:>10,.0f}"
            f"{batched / single:>9.2f}x{1.0:>9.2f}x"
        )
        best = item_set.best()
        for s in item_set.settings:
            lines.append(
                f"{'':<16}{s.n_trees:>11}{s.search_k:>10,}{s.build_cpu_seconds:>12.1f}{s.index_bytes / 2**20:>9.1f}"
                f"{s.recall_at_10:>10.3f}{s.qps:>10,.0f}{s.speedup_vs_exact_single:>9.2f}x"
                f"{s.speedup_vs_exact_batched:>9.2f}x{' *' if s is best else ''}"
            )
    lines.append(f"* the fastest setting with recall@10 >= {TARGET_RECALL}")
    return "\n".join(lines)


def plot(sets: list[ItemSet], path: Path) -> None:
    """One recall-vs-throughput panel per item set, with exact search as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(sets))
    rows = math.ceil(len(sets) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.2 * rows), squeeze=False)
    for ax, item_set in zip(axes.flat, sets):
        for n_trees in sorted({s.n_trees for s in item_set.settings}):
            points = [s for s in item_set.settings if s.n_trees == n_trees]
            ax.plot([s.recall_at_10 for s in points], [s.qps for s in points], "o-", label=f"Annoy, n_trees={n_trees}")
        ax.axhline(item_set.exact_single_qps, color="black", linestyle="--", label="exact numpy, 1 query at a time")
        ax.axhline(item_set.exact_batched_qps, color="grey", linestyle=":", label="exact numpy, blocks of queries")
        ax.axvline(TARGET_RECALL, color="red", alpha=0.3)
        ax.set_yscale("log")
        ax.set_xlabel("recall@10")
        ax.set_ylabel("queries per CPU-second (one thread)")
        ax.set_title(f"{item_set.name} ({item_set.n_items:,} x {item_set.dim})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(sets) :]:
        ax.axis("off")
    fig.suptitle("Annoy: recall@10 vs single-thread throughput (up and to the right is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def verdict(sets: list[ItemSet], quick: bool) -> dict:
    """The claims the lesson makes, checked against this run's numbers."""
    by_name = {s.name: s for s in sets}
    out: dict = {}
    big = by_name.get("clustered_20k" if quick else "clustered_1m")
    if big is not None:
        best = big.best()
        out["clustered_bar"] = {
            "item_set": big.name,
            "claim": f"some setting reaches recall@10 >= {TARGET_RECALL} at >= 10x exact single-query throughput",
            "setting": asdict(best) if best else None,
            "met": bool(best and best.speedup_vs_exact_single >= 10),
        }
    for item_set in sets:  # the lesson's trees-vs-search_k question, answered per item set
        trees = [s.n_trees for s in item_set.settings]
        fewest, most = min(trees, default=0), max(trees, default=0)
        if fewest == most:
            continue
        recall = {(s.n_trees, s.search_k): s.recall_at_10 for s in item_set.settings}
        shared = sorted(k for (t, k) in recall if t == fewest and (most, k) in recall)
        out[f"{item_set.name}_trees_at_equal_search_k"] = {
            "claim": f"at equal search_k, {most} trees give at least the recall@10 of {fewest}",
            "search_k": shared,
            f"recall_n_trees_{fewest}": [recall[(fewest, k)] for k in shared],
            f"recall_n_trees_{most}": [recall[(most, k)] for k in shared],
            "met": all(recall[(most, k)] >= recall[(fewest, k)] for k in shared),
        }
    for name in ("movielens", "gaussian_20k" if quick else "gaussian_1m"):
        item_set = by_name.get(name)
        if item_set is None:
            continue
        best = item_set.best()
        out[f"{name}_counter_case"] = {
            "claim": f"Annoy gains little or nothing over exact search at recall@10 >= {TARGET_RECALL}",
            "best_setting": asdict(best) if best else None,
            "annoy_beats_exact_single_at_target": bool(best and best.speedup_vs_exact_single > 1),
            "annoy_beats_exact_batched_at_target": bool(best and best.speedup_vs_exact_batched > 1),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 20k synthetic items, one training epoch")
    parser.add_argument("--skip-movielens", action="store_true", help="synthetic item sets only (no TensorFlow)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "benchmarks", help="output folder")
    args = parser.parse_args(argv)

    config = plan(args.quick)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "annoy_bench_quick" if args.quick else "annoy_bench"
    started = time.perf_counter()
    load_start = os.getloadavg()
    print(f"numpy {np.__version__}, {os.cpu_count()} CPUs, load average {load_start[0]:.2f} at start (above "
          f"{os.cpu_count()}, other programs compete for the cores: wall-clock times stretch, CPU times do not)",
          flush=True)

    sets: list[ItemSet] = []
    workdir = Path(tempfile.mkdtemp(prefix="annoy-bench-", dir=args.out))
    try:
        if not args.skip_movielens:
            items, queries, description = movielens(config["movielens_queries"], args.quick)
            sets.append(bench_item_set("movielens", description, items, queries, config["movielens_trees"],
                                       config["movielens_search_k"], workdir))
        for label, n in config["sizes"].items():
            for kind in ("clustered", "gaussian"):
                items, queries = synthetic_vectors(n, config["synthetic_queries"], DIM, clustered=kind == "clustered",
                                                   seed=SEED)
                description = (f"{n:,} x {DIM} float32 around 1,000 centres (spread 0.5)" if kind == "clustered"
                               else f"{n:,} x {DIM} float32 standard normal, no clusters")
                sets.append(bench_item_set(f"{kind}_{label}", description, items, queries, config[f"{kind}_trees"],
                                           config["synthetic_search_k"], workdir))
                del items, queries
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    seconds = time.perf_counter() - started
    report = {
        "benchmark": "annoy_bench",
        "quick": args.quick,
        "k": K,
        "target_recall": TARGET_RECALL,
        "metric": "dot",
        "recall_definition": "a returned item is a hit if its exact float64 score >= the k-th best exact score "
                             "- 1e-6*max(1,|k-th score|); distinct hits / k, averaged over queries",
        "timing": "queries per second of CPU time of the querying thread (time.thread_time), BLAS limited to "
                  "1 thread; best of up to 5 runs over all queries; Annoy queried with raw get_nns_by_vector on "
                  "Python lists; build_seconds is wall-clock, build_cpu_seconds process CPU time",
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_start": load_start,
            "load_average_end": os.getloadavg(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "platform": platform.platform(),
        },
        "seconds": seconds,
        "item_sets": [asdict(s) | {"best": asdict(b) if (b := s.best()) else None} for s in sets],
        "verdict": verdict(sets, args.quick),
    }
    json_path = args.out / f"{stem}.json"
    json_path.write_text(json.dumps(report, indent=2), encoding="utf-8")
    plot_path = args.out / f"{stem}.png"
    plot(sets, plot_path)
    print("\n" + table(sets))
    print("\nverdict:", json.dumps(report["verdict"], indent=2))
    print(f"\nwrote {json_path} and {plot_path} in {seconds:.0f} s (load average {os.getloadavg()[0]:.2f} at the end)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
