"""Annoy against exact numpy search: when does approximate nearest-neighbour search pay off?

One run measures, on this machine, for several item sets:

* ``movielens``: the 1,682 movie embeddings of the lesson 04 retrieval model, queried
  with the query tower's embeddings of held-out ratings (the real use case);
* ``clustered_100k`` / ``clustered_1m``: float32 vectors drawn around 1,000 random
  centres (32 dimensions), the kind of structure learned embeddings tend to have;
* ``gaussian_100k`` / ``gaussian_1m``: unclustered standard-normal vectors, the
  classic hard case for space-partitioning trees.

For each item set it times exact top-10 search with numpy (one query at a time, and in
batches), then builds Annoy forests (``metric="dot"``, seeded, single-threaded) over a
grid of ``n_trees`` and queries them over a grid of ``search_k``, recording build
seconds, index bytes, recall@10 and single-thread queries per second. Everything runs
on one core: the BLAS thread count is pinned to 1 before numpy loads.

Recall counts ties as hits: a returned item is a hit when its exact score is at least
the k-th best exact score minus ``1e-6 * max(1, |k-th score|)`` (scores in float64).
MovieLens has 18 movies whose title is shared with another movie; the retrieval model
identifies movies by title, so each pair has identical vectors and either one is a
correct answer.

Usage (from the repository root)::

    nice -n 10 python -m benchmarks.annoy_bench           # full run, ~10 minutes on 2 cores
    nice -n 10 python -m benchmarks.annoy_bench --quick   # smoke run, well under a minute

Writes ``build/benchmarks/annoy_bench.json`` and ``annoy_bench.png`` (``annoy_bench_quick.*``
with ``--quick``) and prints a table.
"""

from __future__ import annotations

import os

# One thread for numpy's BLAS, set before numpy is imported: the comparison is per core.
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
from pathlib import Path

import annoy
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/annoy_bench.py` should find movierec too
    sys.path.insert(0, str(ROOT))

K = 10
TARGET_RECALL = 0.95
SEED = 42
DIM = 32
N_CENTRES = 1_000
CLUSTER_SPREAD = 0.5  # standard deviation around a centre; centres are standard normal
SCORE_BYTES_PER_BATCH = 256 * 2**20  # memory for the float64 reference scores of one block of queries
QUERY_BLOCK = 64  # exact batched search: queries per block
ITEM_BLOCK = 32_768  # exact batched search: items per block (64 x 32,768 float32 scores = 8 MiB)


@dataclass
class Setting:
    """One (n_trees, search_k) point of the grid."""

    n_trees: int
    search_k: int
    build_seconds: float
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


def clustered(n: int, n_queries: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Items and queries drawn from the same mixture of ``N_CENTRES`` Gaussian clusters."""
    centres = rng.standard_normal((N_CENTRES, DIM), dtype=np.float32)

    def draw(count: int) -> np.ndarray:
        points = rng.standard_normal((count, DIM), dtype=np.float32)
        points *= CLUSTER_SPREAD
        points += centres[rng.integers(0, N_CENTRES, size=count)]
        return points

    return draw(n), draw(n_queries)


def gaussian(n: int, n_queries: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Unclustered standard-normal items and queries."""
    return rng.standard_normal((n, DIM), dtype=np.float32), rng.standard_normal((n_queries, DIM), dtype=np.float32)


def movielens(n_queries: int, quick: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """Movie embeddings and query embeddings from the lesson 04 retrieval model.

    The model is trained here (a few epochs with ``--quick``), on the course's random
    80/20 split; the queries are the query tower's embeddings of test ratings.
    """
    if quick:
        os.environ["COURSE_QUICK"] = "1"
    from movierec.setup import setup_lesson

    setup_lesson()
    from movierec.dataset import load_movies, load_ratings, random_split
    from movierec.retrieval import candidate_embeddings, query_embeddings, train_retrieval_model

    movies = load_movies()
    train, test = random_split(load_ratings())
    started = time.perf_counter()
    model = train_retrieval_model(train, movies, features=True)
    seconds = time.perf_counter() - started
    _titles, items = candidate_embeddings(model, movies)
    queries = query_embeddings(model, test.take(n_queries))
    items = np.asarray(items, dtype=np.float32)
    queries = np.asarray(queries, dtype=np.float32)[:n_queries]
    distinct = len(np.unique(items, axis=0))
    return items, queries, (
        f"{len(items):,} movie embeddings from the feature-rich retrieval model "
        f"(trained in {seconds:.0f} s; {len(items) - distinct} movies share a vector with another)"
    )


# ---------------------------------------------------------------------------- exact search


def exact_reference(items: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    """The k-th best exact score of every query, in float64 (the recall threshold)."""
    items64 = items.astype(np.float64)
    kth = np.empty(len(queries))
    batch = max(1, SCORE_BYTES_PER_BATCH // (8 * len(items)))
    for start in range(0, len(queries), batch):
        scores = queries[start : start + batch].astype(np.float64) @ items64.T
        kth[start : start + batch] = -np.partition(-scores, k - 1, axis=1)[:, k - 1]
    return kth


def recall_at_k(found: list[list[int]], items: np.ndarray, queries: np.ndarray, kth: np.ndarray, k: int = K) -> float:
    """Tie-aware recall@k: the share of the k slots holding an item scoring >= the k-th best."""
    hits = 0
    for row, ids in enumerate(found):
        ids = np.unique(np.asarray(ids[:k], dtype=np.int64))
        if len(ids) == 0:
            continue
        scores = items[ids].astype(np.float64) @ queries[row].astype(np.float64)
        hits += int(np.sum(scores >= kth[row] - 1e-6 * max(1.0, abs(kth[row]))))
    return hits / (k * len(found))


def exact_single(items: np.ndarray, queries: np.ndarray, k: int = K) -> list[np.ndarray]:
    """Exact top-k one query at a time: a matrix-vector product and a partial sort."""
    answers = []
    for query in queries:
        scores = items @ query
        top = np.argpartition(scores, -k)[-k:]
        answers.append(top[np.argsort(-scores[top])])
    return answers


def exact_batched(items: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    """Exact top-k for blocks of queries against blocks of items, merging the running top-k.

    Blocking keeps each score matrix small (``QUERY_BLOCK x ITEM_BLOCK`` floats): one
    ``(batch, 1,000,000)`` matrix plus its ``argpartition`` indices would not fit in
    cache and spends its time allocating and paging memory.
    """
    rows = np.arange(QUERY_BLOCK)[:, None]
    answers = []
    for q_start in range(0, len(queries), QUERY_BLOCK):
        block = queries[q_start : q_start + QUERY_BLOCK]
        best_scores = np.full((len(block), k), -np.inf, dtype=np.float32)
        best_ids = np.zeros((len(block), k), dtype=np.int64)
        for i_start in range(0, len(items), ITEM_BLOCK):
            scores = block @ items[i_start : i_start + ITEM_BLOCK].T
            kk = min(k, scores.shape[1])
            top = np.argpartition(scores, -kk, axis=1)[:, -kk:]
            merged_scores = np.concatenate([best_scores, scores[rows[: len(block)], top]], axis=1)
            merged_ids = np.concatenate([best_ids, top + i_start], axis=1)
            keep = np.argpartition(merged_scores, -k, axis=1)[:, -k:]
            best_scores = np.take_along_axis(merged_scores, keep, axis=1)
            best_ids = np.take_along_axis(merged_ids, keep, axis=1)
        order = np.argsort(-best_scores, axis=1)
        answers.append(np.take_along_axis(best_ids, order, axis=1))
    return np.concatenate(answers)


def throughput(run: Callable[[], object], n_queries: int, min_seconds: float = 0.5, max_repeats: int = 5) -> float:
    """Queries per second of ``run`` (which answers ``n_queries`` queries), best of a few runs.

    Taking the best run filters out time stolen by other processes on a shared machine;
    slow runs (over ``min_seconds``) are timed once.
    """
    best = math.inf
    total = 0.0
    repeats = 0
    while repeats < max_repeats and (repeats < 2 or total < min_seconds):
        started = time.perf_counter()
        run()
        elapsed = time.perf_counter() - started
        best = min(best, elapsed)
        total += elapsed
        repeats += 1
        if repeats == 1 and elapsed > min_seconds:
            break
    return n_queries / best


# ---------------------------------------------------------------------------- Annoy


def build_annoy(items: np.ndarray, n_trees: int, workdir: Path) -> tuple[annoy.AnnoyIndex, float, int]:
    """Build a seeded single-threaded ``dot`` forest; return it, build seconds and file size."""
    started = time.perf_counter()
    index = annoy.AnnoyIndex(items.shape[1], "dot")
    index.set_seed(SEED)
    for position, vector in enumerate(items):
        index.add_item(position, vector)
    index.build(n_trees, n_jobs=1)
    seconds = time.perf_counter() - started
    path = workdir / f"bench-{n_trees}.ann"
    index.save(str(path))  # Annoy re-opens the saved file memory-mapped
    return index, seconds, path.stat().st_size


def bench_item_set(
    name: str,
    description: str,
    items: np.ndarray,
    queries: np.ndarray,
    tree_grid: list[int],
    search_grid: list[int],
    workdir: Path,
    log: Callable[[str], None],
) -> ItemSet:
    items = np.ascontiguousarray(items, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    log(f"\n== {name}: {description}")
    kth = exact_reference(items, queries)
    for exact in (exact_single(items, queries[:20]), exact_batched(items, queries[:20])):
        assert recall_at_k([list(ids) for ids in exact], items, queries[:20], kth[:20]) == 1.0, "exact search is broken"
    single = throughput(lambda: exact_single(items, queries), len(queries))
    batched = throughput(lambda: exact_batched(items, queries), len(queries))
    log(f"   exact numpy: {single:,.0f} q/s one at a time, {batched:,.0f} q/s in blocks of {QUERY_BLOCK} queries")
    result = ItemSet(name, description, len(items), items.shape[1], len(queries), items.nbytes, single, batched, QUERY_BLOCK)
    query_lists = [q.tolist() for q in queries]  # Annoy's fastest input: plain Python lists
    for n_trees in tree_grid:
        index, build_seconds, size = build_annoy(items, n_trees, workdir)
        log(f"   n_trees={n_trees}: built in {build_seconds:.1f} s, {size / 2**20:,.1f} MiB")
        for search_k in search_grid:
            found = [index.get_nns_by_vector(q, K, search_k=search_k) for q in query_lists]
            recall = recall_at_k(found, items, queries, kth)
            qps = throughput(lambda: [index.get_nns_by_vector(q, K, search_k=search_k) for q in query_lists], len(queries))
            setting = Setting(n_trees, search_k, build_seconds, size, recall, qps, qps / single, qps / batched)
            result.settings.append(setting)
            log(f"      search_k={search_k:>7,}: recall@10={recall:.3f}  {qps:>9,.0f} q/s  ({qps / single:5.1f}x exact)")
            if recall >= 0.999:  # saturated: larger search_k only costs time
                break
        index.unload()
        for leftover in workdir.glob("*.ann"):
            leftover.unlink()
    return result


# ---------------------------------------------------------------------------- report


def plan(quick: bool) -> dict:
    """Item-set sizes and grids of the full and the quick run."""
    if quick:
        return {
            "synthetic_sizes": {"20k": 20_000},
            "synthetic_queries": 100,
            "synthetic_trees": [5, 20],
            "synthetic_search_k": [100, 1_000, 10_000],
            "movielens_queries": 200,
            "movielens_trees": [1, 10],
            "movielens_search_k": [10, 100, 1_000],
        }
    return {
        "synthetic_sizes": {"100k": 100_000, "1m": 1_000_000},
        "synthetic_queries": 200,
        "synthetic_trees": [10, 20, 40],
        "synthetic_search_k": [300, 1_000, 2_000, 5_000, 10_000, 30_000, 100_000, 300_000],
        "movielens_queries": 1_000,
        "movielens_trees": [1, 3, 10, 30],
        "movielens_search_k": [10, 30, 100, 300, 1_000, 3_000, 10_000],
    }


def table(sets: list[ItemSet]) -> str:
    lines = [
        f"{'item set':<16}{'n_trees':>8}{'search_k':>10}{'build s':>9}{'MiB':>9}"
        f"{'recall@10':>10}{'q/s':>10}{'vs 1-by-1':>10}{'vs batch':>10}"
    ]
    for item_set in sets:
        lines.append(
            f"{item_set.name:<16}{'exact':>8}{'':>10}{'':>9}{item_set.vector_bytes / 2**20:>9.1f}{1.0:>10.3f}"
            f"{item_set.exact_single_qps:>10,.0f}{'1.0x':>10}{item_set.exact_single_qps / item_set.exact_batched_qps:>9.2f}x"
        )
        lines.append(
            f"{'':<16}{'exact batch':>18}{'':>9}{'':>9}{1.0:>10.3f}"
            f"{item_set.exact_batched_qps:>10,.0f}{item_set.exact_batched_qps / item_set.exact_single_qps:>9.2f}x{'1.0x':>10}"
        )
        for s in item_set.settings:
            mark = " *" if s is item_set.best() else ""
            lines.append(
                f"{'':<16}{s.n_trees:>8}{s.search_k:>10,}{s.build_seconds:>9.1f}{s.index_bytes / 2**20:>9.1f}"
                f"{s.recall_at_10:>10.3f}{s.qps:>10,.0f}{s.speedup_vs_exact_single:>9.2f}x"
                f"{s.speedup_vs_exact_batched:>9.2f}x{mark}"
            )
    lines.append(f"* fastest setting with recall@10 >= {TARGET_RECALL}")
    return "\n".join(lines)


def plot(sets: list[ItemSet], path: Path) -> None:
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
        ax.axhline(item_set.exact_single_qps, color="black", linestyle="--", label="exact numpy, 1 query")
        ax.axhline(item_set.exact_batched_qps, color="grey", linestyle=":", label="exact numpy, batched")
        ax.axvline(TARGET_RECALL, color="red", alpha=0.3)
        ax.set_yscale("log")
        ax.set_xlabel("recall@10")
        ax.set_ylabel("queries per second (1 thread)")
        ax.set_title(f"{item_set.name} ({item_set.n_items:,} x {item_set.dim})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(sets) :]:
        ax.axis("off")
    fig.suptitle("Annoy recall@10 vs single-thread throughput (up and right is better)")
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
    for name in ("movielens", "gaussian_1m" if not quick else "gaussian_20k"):
        item_set = by_name.get(name)
        if item_set is None:
            continue
        best = item_set.best()
        out[f"{name}_counter_case"] = {
            "best_setting": asdict(best) if best else None,
            "annoy_beats_exact_single_at_target": bool(best and best.speedup_vs_exact_single > 1),
            "annoy_beats_exact_batched_at_target": bool(best and best.speedup_vs_exact_batched > 1),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run (20k synthetic items, short training)")
    parser.add_argument("--skip-movielens", action="store_true", help="synthetic item sets only (no TensorFlow)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "benchmarks", help="output folder")
    args = parser.parse_args(argv)

    config = plan(args.quick)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "annoy_bench_quick" if args.quick else "annoy_bench"
    started = time.perf_counter()
    load_before = os.getloadavg()
    print(f"Annoy {getattr(annoy, '__version__', '1.17')} vs numpy {np.__version__}; {os.cpu_count()} CPUs, "
          f"load average {load_before[0]:.2f} at start; BLAS threads={os.environ['OPENBLAS_NUM_THREADS']}")

    rng = np.random.default_rng(SEED)
    sets: list[ItemSet] = []
    workdir = Path(tempfile.mkdtemp(prefix="annoy-bench-", dir=args.out))
    try:
        if not args.skip_movielens:
            items, queries, description = movielens(config["movielens_queries"], args.quick)
            sets.append(bench_item_set("movielens", description, items, queries, config["movielens_trees"],
                                       config["movielens_search_k"], workdir, print))
        for label, n in config["synthetic_sizes"].items():
            for kind, make in (("clustered", clustered), ("gaussian", gaussian)):
                items, queries = make(n, config["synthetic_queries"], rng)
                description = (
                    f"{n:,} x {DIM} float32 around {N_CENTRES:,} centres (spread {CLUSTER_SPREAD})"
                    if kind == "clustered" else f"{n:,} x {DIM} float32 standard normal, no clusters"
                )
                trees = config["synthetic_trees"] if kind == "clustered" else config["synthetic_trees"][1:2]
                sets.append(bench_item_set(f"{kind}_{label}", description, items, queries, trees,
                                           config["synthetic_search_k"], workdir, print))
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
        "recall_definition": "a returned item is a hit if its exact float64 score >= k-th best exact score "
                             "- 1e-6*max(1,|k-th score|); hits / k, averaged over queries",
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_start": load_before,
            "load_average_end": os.getloadavg(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "blas_threads": os.environ["OPENBLAS_NUM_THREADS"],
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
    print(f"\nverdict: {json.dumps(report['verdict'], indent=2)}")
    print(f"\nwrote {json_path} and {plot_path} in {seconds:.0f} s (load average {os.getloadavg()[0]:.2f} at the end)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
