"""Lesson 08 (the recommendation service): the wrong answers a student is most likely to write, and the shortcuts.

Each entry replaces one solution cell; ``tests/test_wrong_answers.py`` runs the real test
cell after it and requires the cell to fail. The comment above each entry says which part
of the test catches it (``visible`` or ``hidden``).
"""

from exercise_harness import WrongAnswer

_RECOMMEND = '''
def recommend_for(user_id, k, embed, index, score, seen=frozenset(), n_candidates=100):
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n_candidates:
        raise ValueError("bad k")
    seen = set(seen)
    vector = np.asarray(embed([user_id]))[0]
{body}
    scores = np.asarray(score([user_id] * len(titles), titles), dtype=np.float64).reshape(-1)
    order = np.argsort(-scores, kind="stable")[:k]
    return [(titles[i], float(scores[i])) for i in order]
'''

# Exercise 1, recommend_for (3 points).
RECOMMEND = [
    # visible: rated titles come back
    WrongAnswer(
        "recommend_for", "test_recommend_for",
        "no seen filter",
        _RECOMMEND.format(body='''    _, positions = index.search(vector, k=n_candidates)
    titles = list(dict.fromkeys(str(index.labels[p]) for p in positions[0]))''')),
    # visible: fewer than n_candidates titles are ranked (the seen ones are cut from the 100)
    WrongAnswer(
        "recommend_for", "test_recommend_for",
        "searches only n_candidates rows, then drops the seen ones",
        _RECOMMEND.format(body='''    _, positions = index.search(vector, k=n_candidates)
    titles = [t for t in dict.fromkeys(str(index.labels[p]) for p in positions[0]) if t not in seen]''')),
    # hidden: a repeated title is ranked twice and returned twice
    WrongAnswer(
        "recommend_for", "test_recommend_for",
        "keeps repeated titles",
        _RECOMMEND.format(body='''    _, positions = index.search(vector, k=min(len(index), n_candidates + len(seen)))
    titles = [str(index.labels[p]) for p in positions[0] if str(index.labels[p]) not in seen][:n_candidates]''')),
    # visible: filtering the final top k leaves fewer than k
    WrongAnswer(
        "recommend_for", "test_recommend_for",
        "filters the seen titles out of the final top k",
        '''
def recommend_for(user_id, k, embed, index, score, seen=frozenset(), n_candidates=100):
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n_candidates:
        raise ValueError("bad k")
    vector = np.asarray(embed([user_id]))[0]
    _, positions = index.search(vector, k=n_candidates)
    titles = list(dict.fromkeys(str(index.labels[p]) for p in positions[0]))
    scores = np.asarray(score([user_id] * len(titles), titles), dtype=np.float64).reshape(-1)
    order = np.argsort(-scores, kind="stable")[:k]
    return [(titles[i], float(scores[i])) for i in order if titles[i] not in set(seen)]
'''),
]

_URL = '''
def pinned_predict_url(base_url, model, version=None, label=None):
    base = f"{{base_url.rstrip('/')}}/v1/models/{{model}}"
{body}
    return f"{{base}}:predict"
'''

# Exercise 2, pinned_predict_url (2 points).
URL = [
    # visible: a version and a label at once are accepted (the version wins silently)
    WrongAnswer(
        "pinned_predict_url", "test_pinned_predict_url",
        "no error when both a version and a label are given",
        _URL.format(body='''    if version is not None:
        if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1:
            raise ValueError("bad version")
        return f"{base}/versions/{int(version)}:predict"
    if label is not None:
        if not label or "/" in label:
            raise ValueError("bad label")
        return f"{base}/labels/{label}:predict"''')),
    # visible: the label put where a version number goes
    WrongAnswer(
        "pinned_predict_url", "test_pinned_predict_url",
        "label in /versions/<label>",
        _URL.format(body='''    if version is not None and label is not None:
        raise ValueError("both")
    pin = version if version is not None else label
    if pin is not None:
        return f"{base}/versions/{pin}:predict"''')),
    # hidden: True, 0, 2.0 and "3" are taken as versions
    WrongAnswer(
        "pinned_predict_url", "test_pinned_predict_url",
        "version not validated",
        _URL.format(body='''    if version is not None and label is not None:
        raise ValueError("both")
    if version is not None:
        return f"{base}/versions/{version}:predict"
    if label is not None:
        if not label or "/" in label:
            raise ValueError("bad label")
        return f"{base}/labels/{label}:predict"''')),
    # visible: the library's predict_url knows no labels
    WrongAnswer(
        "pinned_predict_url", "test_pinned_predict_url",
        "library shortcut: clients.predict_url",
        '''
from movierec.serving.clients import predict_url

def pinned_predict_url(base_url, model, version=None, label=None):
    return predict_url(base_url, model, version)
'''),
]

_PERCENTILE = '''
def percentile_ms(latencies, q):
    import math
    values = sorted(float(v) for v in latencies)
    if not values or not 0 < q <= 100:
        raise ValueError("bad input")
{body}
'''

# Exercise 3, percentile_ms (2 points).
PERCENTILE = [
    # visible: interpolates, so p50 of 1..100 is 50.5
    WrongAnswer(
        "percentile_ms", "test_percentile_ms",
        "np.percentile (linear interpolation)",
        _PERCENTILE.format(body="    return float(np.percentile(values, q))")),
    # visible: rank floor(q n / 100) counted from 0 is one too far
    WrongAnswer(
        "percentile_ms", "test_percentile_ms",
        "index int(q * n / 100) instead of ceil(q * n / 100) - 1",
        _PERCENTILE.format(body="    return values[min(int(q * len(values) / 100), len(values) - 1)]")),
    # visible: the latencies in arrival order
    WrongAnswer(
        "percentile_ms", "test_percentile_ms",
        "does not sort",
        _PERCENTILE.format(body='''    values = [float(v) for v in latencies]
    return values[math.ceil(q * len(values) / 100) - 1]''')),
    # visible: p99 of 150 requests is rank 148 (rounds down)
    WrongAnswer(
        "percentile_ms", "test_percentile_ms",
        "rank round(q * n / 100) instead of ceil",
        _PERCENTILE.format(body="    return values[max(round(q * len(values) / 100), 1) - 1]")),
]

WRONG_ANSWERS = RECOMMEND + URL + PERCENTILE
