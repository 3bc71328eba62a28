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

_BISECT = '''
def smallest_search_k(recall_at, candidates, target=0.95):
    values = {values}
    if not values:
        raise ValueError("empty")
    if recall_at(values[-1]) {missed} target:
        {missing}
    lo, hi = 0, len(values) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if recall_at(values[mid]) {op} target:
            hi = mid
        else:
            lo = mid + 1
    return values[lo]
'''


def _bisect(values: str = "sorted(set(int(c) for c in candidates))", op: str = ">=",
            missing: str = 'raise ValueError("unreachable")') -> str:
    missed = {">=": "<", ">": "<="}[op]  # the largest candidate misses the target
    return _BISECT.format(values=values, op=op, missed=missed, missing=missing)


# Exercise 3, smallest_search_k (2 points).
SEARCH_K = [
    # visible: 1,000 measurements instead of at most 11
    WrongAnswer(
        "smallest_search_k", "test_smallest_search_k",
        "library shortcut: movierec.annoy.first_reaching (a linear scan)",
        '''
from movierec.annoy import first_reaching

def smallest_search_k(recall_at, candidates, target=0.95):
    return first_reaching(recall_at, candidates, target)
'''),
    # visible: the answer is read as a plain int before it is compared (issue 13)
    WrongAnswer(
        "smallest_search_k", "test_smallest_search_k",
        "cheat: an int subclass that equals everything",
        '''
class _Anything(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


def smallest_search_k(recall_at, candidates, target=0.95):
    return _Anything(0)
'''),
    # visible: 951 instead of 950 (recall 0.95 reaches a target of 0.95)
    WrongAnswer(
        "smallest_search_k", "test_smallest_search_k",
        "requires recall > target instead of >=",
        _bisect(op=">")),
    # visible: "when even the largest candidate misses the target, raise ValueError"
    WrongAnswer(
        "smallest_search_k", "test_smallest_search_k",
        "returns the largest candidate when none reaches the target",
                _bisect(missing="return values[-1]")),
    # hidden: 12 measurements for 1,024 distinct values given twice
    WrongAnswer(
        "smallest_search_k", "test_smallest_search_k",
        "sorts the candidates but keeps the repeats",
                _bisect(values="sorted(int(c) for c in candidates)")),
    # visible: [5000, 10, 700, 2000, 10] gives 950, which is not a candidate
    WrongAnswer(
        "smallest_search_k", "test_smallest_search_k",
        "bisects over every integer between the smallest and largest candidate",
        '''
def smallest_search_k(recall_at, candidates, target=0.95):
    values = sorted(set(int(c) for c in candidates))
    if not values:
        raise ValueError("empty")
    lo, hi = values[0], values[-1]
    if recall_at(hi) < target:
        raise ValueError("unreachable")
    while lo < hi:
        mid = (lo + hi) // 2
        if recall_at(mid) >= target:
            hi = mid
        else:
            lo = mid + 1
    return lo
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

WRONG_ANSWERS = MIPS + RECALL + SEARCH_K + MORE_LIKE_THIS
