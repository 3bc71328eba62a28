"""Lesson 06 (Annoy): the wrong answers a student is most likely to write, and the library shortcuts.

Each entry replaces one solution cell; ``tests/test_wrong_answers.py`` runs the real test
cell after it and requires the cell to fail. The comment above each group says which
part of the test catches each mistake (``visible`` or ``hidden``).
"""

from exercise_harness import WrongAnswer

_MIPS_HEAD = '''
def build_mips_index(vectors, n_trees=10, seed=42):
    vectors = np.asarray(vectors, dtype=np.float64)
    lengths = np.linalg.norm(vectors, axis=1)
'''

_MIPS_BUILD = '''
    index = annoy.AnnoyIndex(augmented.shape[1], "angular")
    index.set_seed(seed)
    for item, vector in enumerate(augmented):
        index.add_item(item, vector)
    index.build(n_trees, n_jobs=1)
    return index
'''

_RIGHT_EXTRA = '''
    extra = np.sqrt(np.maximum(lengths.max() ** 2 - lengths**2, 0.0))
    augmented = np.hstack([vectors, extra[:, None]])
'''


def _mips(extra: str, build: str = _MIPS_BUILD) -> str:
    return _MIPS_HEAD + extra + build


# Exercise 1, build_mips_index (3 points).
MIPS = [
    # visible: dimension d, not d + 1
    WrongAnswer(
        "build_mips_index", "test_build_mips_index",
        "library shortcut: MovieIndex.build(metric='dot').annoy",
        '''
from movierec.annoy import MovieIndex

def build_mips_index(vectors, n_trees=10, seed=42):
    return MovieIndex.build(vectors, metric="dot", n_trees=n_trees, seed=seed).annoy
'''),
    # visible: dimension d; and its ranking is cosine, not inner product
    WrongAnswer(
        "build_mips_index", "test_build_mips_index",
        "plain angular index on the raw vectors (cosine, no extra coordinate)",
                _mips("    augmented = vectors\n")),
    # visible: the stored lengths differ (the clipped square roots are mostly 0)
    WrongAnswer(
        "build_mips_index", "test_build_mips_index",
        "extra coordinate sqrt(1 - |x|^2), as if every vector had length 1",
                _mips("    augmented = np.hstack([vectors, np.sqrt(np.maximum(1 - lengths**2, 0.0))[:, None]])\n")),
    # visible: lengths M - |x| + |x| do not make equal norms
    WrongAnswer(
        "build_mips_index", "test_build_mips_index",
        "extra coordinate M - |x| instead of sqrt(M^2 - |x|^2)",
                _mips("    augmented = np.hstack([vectors, (lengths.max() - lengths)[:, None]])\n")),
    # visible: unit vectors have length 1, not M (and rank by cosine)
    WrongAnswer(
        "build_mips_index", "test_build_mips_index",
        "normalises the items and appends 0 (cosine search)",
                _mips("    augmented = np.hstack([vectors / lengths[:, None], np.zeros((len(vectors), 1))])\n")),
    # hidden: a forest grown from Annoy's default seed differs from a set_seed(seed) one
    WrongAnswer(
        "build_mips_index", "test_build_mips_index",
        "never calls set_seed (Annoy's fixed default seed is used)",
                _mips(_RIGHT_EXTRA, _MIPS_BUILD.replace("    index.set_seed(seed)\n", ""))),
    # hidden: with 2 cores, two threads grow the trees from seed and seed + 1
    WrongAnswer(
        "build_mips_index", "test_build_mips_index",
        "builds with Annoy's default n_jobs=-1 (one thread per core)",
                _mips(_RIGHT_EXTRA, _MIPS_BUILD.replace("index.build(n_trees, n_jobs=1)", "index.build(n_trees)"))),
]

_RECALL_CHECKS = '''
    scores = np.atleast_2d(np.asarray(scores))
    if len(found_ids) != len(scores):
        raise ValueError("mismatch")
    if not 1 <= k <= scores.shape[1]:
        raise ValueError("bad k")
'''


def _recall(body: str) -> str:
    return "def recall_at_k(found_ids, scores, k=10, eps=1e-6):" + _RECALL_CHECKS + body


# Exercise 2, recall_at_k (3 points).
RECALL = [
    # visible: the tie test ([0, 2] against exact top-2 [0, 1])
    WrongAnswer(
        "recall_at_k", "test_recall_at_k",
        "compares ids with the exact top-k ids (a tie counts as a miss)",
        _recall('''
    recalls = []
    for row, ids in zip(scores, found_ids):
        exact = set(np.argsort(-row, kind="stable")[:k].tolist())
        recalls.append(len(exact & set(np.asarray(ids, dtype=np.int64)[:k].tolist())) / k)
    return float(np.mean(recalls))
''')),
    # visible: "a repeated id counts once"
    WrongAnswer(
        "recall_at_k", "test_recall_at_k",
        "counts a repeated id twice (no de-duplication)",
        _recall('''
    recalls = []
    for row, ids in zip(scores, found_ids):
        threshold = np.partition(row, -k)[-k] - eps
        recalls.append(np.sum(row[np.asarray(ids, dtype=np.int64)[:k]] >= threshold) / k)
    return float(np.mean(recalls))
''')),
    # visible: "a short list of 1 item can give at most 1 hit of k=2"
    WrongAnswer(
        "recall_at_k", "test_recall_at_k",
        "divides by the number of returned ids instead of k",
        _recall('''
    recalls = []
    for row, ids in zip(scores, found_ids):
        threshold = np.partition(row, -k)[-k] - eps
        distinct = np.unique(np.asarray(ids, dtype=np.int64)[:k])
        recalls.append(np.sum(row[distinct] >= threshold) / len(distinct))
    return float(np.mean(recalls))
''')),
    # visible: the shape check (one number, not one per query)
    WrongAnswer(
        "recall_at_k", "test_recall_at_k",
        "returns the per-query recalls instead of their mean",
        _recall('''
    recalls = []
    for row, ids in zip(scores, found_ids):
        threshold = np.partition(row, -k)[-k] - eps
        distinct = np.unique(np.asarray(ids, dtype=np.int64)[:k])
        recalls.append(np.sum(row[distinct] >= threshold) / k)
    return np.array(recalls)
''')),
    # visible: the answer is copied into a plain float before it is compared (issue 13)
    WrongAnswer(
        "recall_at_k", "test_recall_at_k",
        "cheat: an ndarray subclass whose comparisons always say equal",
        '''
class _AlwaysEqual(np.ndarray):
    def __eq__(self, other):
        return np.ones(np.shape(self), dtype=bool).view(_AlwaysEqual) if np.ndim(self) else True

    __hash__ = None


def recall_at_k(found_ids, scores, k=10, eps=1e-6):
    return np.zeros(()).view(_AlwaysEqual)
'''),
    # hidden: "eps must be honoured" (eps=0.2)
    WrongAnswer(
        "recall_at_k", "test_recall_at_k",
        "uses a fixed 1e-6 tolerance and ignores the eps argument",
        _recall('''
    recalls = []
    for row, ids in zip(scores, found_ids):
        threshold = np.partition(row, -k)[-k] - 1e-6
        distinct = np.unique(np.asarray(ids, dtype=np.int64)[:k])
        recalls.append(np.sum(row[distinct] >= threshold) / k)
    return float(np.mean(recalls))
''')),
    # hidden: "scores within eps are hits" (2.0 - 1e-9 against 2.0)
    WrongAnswer(
        "recall_at_k", "test_recall_at_k",
        "no tolerance at all (score >= k-th best exactly)",
        _recall('''
    recalls = []
    for row, ids in zip(scores, found_ids):
        threshold = np.partition(row, -k)[-k]
        distinct = np.unique(np.asarray(ids, dtype=np.int64)[:k])
        recalls.append(np.sum(row[distinct] >= threshold) / k)
    return float(np.mean(recalls))
''')),
    # hidden: its tolerance is relative and fixed, so eps=0.2 is not honoured
    WrongAnswer(
        "recall_at_k", "test_recall_at_k",
        "library shortcut: recall_from_vectors with an identity item matrix",
        '''
from movierec.annoy import recall_from_vectors

def recall_at_k(found_ids, scores, k=10, eps=1e-6):
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    return recall_from_vectors(found_ids, np.eye(scores.shape[1]), scores, k)
'''),
]

_FRONT = ("recall_speed_frontier", "test_recall_speed_frontier")

# Exercise 3, recall_speed_frontier (2 points).
FRONTIER = [
    # visible: the dominated n_trees=10/search_k=100 row is still there
    WrongAnswer(*_FRONT, "every row, sorted by recall (no dominance check)", '''
def recall_speed_frontier(rows):
    return sorted(rows, key=lambda r: r["recall"])
'''),
    # visible: the frontier comes out fastest first
    WrongAnswer(*_FRONT, "the right rows, in order of decreasing recall", '''
def recall_speed_frontier(rows):
    frontier = []
    for row in sorted(rows, key=lambda r: (-r["qps"], -r["recall"])):
        if not frontier or row["recall"] > frontier[-1]["recall"]:
            frontier.append(row)
    return frontier[::-1]
'''),
    # visible: one best row per number of trees is not the frontier
    WrongAnswer(*_FRONT, "the most accurate setting of each n_trees", '''
def recall_speed_frontier(rows):
    best = {}
    for row in rows:
        if row.get("n_trees") not in best or row["recall"] > best[row.get("n_trees")]["recall"]:
            best[row.get("n_trees")] = row
    return sorted(best.values(), key=lambda r: r["recall"])
'''),
    # hidden: equal recall or equal speed: a row that is only as good in one measure survives
    WrongAnswer(*_FRONT, "drops a row only when another is strictly better in both measures", '''
def recall_speed_frontier(rows):
    kept = [r for r in rows
            if not any(o["recall"] > r["recall"] and o["qps"] > r["qps"] for o in rows)]
    return sorted(kept, key=lambda r: r["recall"])
'''),
    # hidden: identical trade-offs are kept twice
    WrongAnswer(*_FRONT, "keeps every copy of an identical trade-off", '''
def recall_speed_frontier(rows):
    def dominated(r):
        return any(o["recall"] >= r["recall"] and o["qps"] >= r["qps"]
                   and (o["recall"] > r["recall"] or o["qps"] > r["qps"]) for o in rows)
    return sorted((r for r in rows if not dominated(r)), key=lambda r: r["recall"])
'''),
    # visible: "rows must not be modified or reordered"
    WrongAnswer(*_FRONT, "sorts the caller's list in place", '''
def recall_speed_frontier(rows):
    rows.sort(key=lambda r: (-r["qps"], -r["recall"]))
    frontier = []
    for row in rows:
        if not frontier or row["recall"] > frontier[-1]["recall"]:
            frontier.append(row)
    return frontier
'''),
    # visible: a dict subclass that equals everything is refused by movierec.checks (issue 13)
    WrongAnswer(*_FRONT, "cheat: rows that compare equal to anything", '''
class _Anything(dict):
    def __eq__(self, other):
        return True

    __hash__ = None


def recall_speed_frontier(rows):
    return [_Anything(r) for r in rows]
'''),
]

_MLT_HEAD = '''
def more_like_this(index, titles, title, n=5, search_k=-1):
    positions = [i for i, t in enumerate(titles) if t == title]
    if not positions:
        raise KeyError(title)
'''

# Exercise 4, more_like_this (2 points).
MORE_LIKE_THIS = [
    # visible: the similarities are not the cosines
    WrongAnswer(
        "more_like_this", "test_more_like_this",
        "returns Annoy's angular distance instead of the cosine",
        _MLT_HEAD + '''
    found, distances = index.get_nns_by_item(
        positions[0], n + len(positions), search_k=search_k, include_distances=True)
    return [(titles[i], d) for i, d in zip(found, distances) if titles[i] != title][:n]
'''),
    # visible: 4 pairs instead of 5
    WrongAnswer(
        "more_like_this", "test_more_like_this",
        "asks Annoy for n items, then drops the movie itself",
        _MLT_HEAD + '''
    found, distances = index.get_nns_by_item(positions[0], n, search_k=search_k, include_distances=True)
    return [(titles[i], 1 - d * d / 2) for i, d in zip(found, distances) if titles[i] != title]
'''),
    # hidden: a twin title recommends its own other entry
    WrongAnswer(
        "more_like_this", "test_more_like_this",
        "drops only the first result (assumes it is the movie itself)",
        _MLT_HEAD + '''
    found, distances = index.get_nns_by_item(positions[0], n + 1, search_k=search_k, include_distances=True)
    return [(titles[i], 1 - d * d / 2) for i, d in zip(found, distances)][1:n + 1]
'''),
    # hidden: with search_k=40 the answer is not what the index finds with that budget
    WrongAnswer(
        "more_like_this", "test_more_like_this",
        "ignores search_k (always Annoy's default budget)",
        _MLT_HEAD + '''
    found, distances = index.get_nns_by_item(positions[0], n + len(positions), include_distances=True)
    return [(titles[i], 1 - d * d / 2) for i, d in zip(found, distances) if titles[i] != title][:n]
'''),
    # hidden: exact search is not the index's answer at a small search_k
    WrongAnswer(
        "more_like_this", "test_more_like_this",
        "exact cosine search over the stored vectors, bypassing the index",
        _MLT_HEAD + '''
    vectors = np.array([index.get_item_vector(i) for i in range(index.get_n_items())])
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosines = unit @ unit[positions[0]]
    order = np.argsort(-cosines, kind="stable")
    return [(titles[i], float(cosines[i])) for i in order if titles[i] != title][:n]
'''),
    # hidden: twin titles get n - 1 results (k = n + 1 leaves room for the movie itself only)
    WrongAnswer(
        "more_like_this", "test_more_like_this",
        "library shortcut: MovieIndex.search from the movie's vector, k = n + 1",
        '''
from movierec.annoy import MovieIndex

def more_like_this(index, titles, title, n=5, search_k=-1):
    wrapped = MovieIndex(index, titles, metric="angular", n_trees=index.get_n_trees(), seed=0)
    position = wrapped.position(title)
    scores, found = wrapped.search(wrapped.vector(position), k=n + 1, search_k=search_k)
    return [(titles[i], float(s)) for i, s in zip(found[0], scores[0]) if titles[i] != title][:n]
'''),
]

WRONG_ANSWERS = MIPS + RECALL + FRONTIER + MORE_LIKE_THIS
