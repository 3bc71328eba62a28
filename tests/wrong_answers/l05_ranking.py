"""Plausible wrong answers to lesson 05's exercises; each must fail its exercise's test cell.

Run by ``tests/exercise_harness.py``. ``source`` replaces the whole solution cell.
"""

from exercise_harness import WrongAnswer

_RATING = ("rating_model", "test_rating_model")
_LOSS = ("compute_loss", "test_compute_loss")
_HEAD = ("deep_cross_head", "test_deep_cross_head")
_NDCG = ("ndcg_at_k", "test_ndcg_at_k")
_RECOMMEND = ("recommend", "test_recommend")


def _rating_model(init: str, call: str, bases: str = "tf.keras.Model") -> str:
    return f"""
class RatingModel({bases}):
    def __init__(self, user_ids, movie_titles, embedding_dim=32, hidden_units=(256, 64), interaction=False):
        super().__init__()
        self.interaction = interaction
{init}
    def call(self, features):
{call}
"""


_LOOKUPS = """\
        self.user_lookup = tf.keras.layers.StringLookup(vocabulary=np.unique(user_ids))
        self.title_lookup = tf.keras.layers.StringLookup(vocabulary=np.unique(movie_titles))
"""
_TABLES = """\
        self.user_vectors = tf.keras.layers.Embedding(self.user_lookup.vocabulary_size(), embedding_dim)
        self.title_vectors = tf.keras.layers.Embedding(self.title_lookup.vocabulary_size(), embedding_dim)
"""
_VECTORS = """\
        user = self.user_vectors(self.user_lookup(features["user_id"]))
        title = self.title_vectors(self.title_lookup(features["movie_title"]))
"""
_LAYERS = """\
        for layer in self.hidden:
            x = layer(x)
        return self.output_layer(x)
"""
_CALL = _VECTORS + """\
        x = tf.concat([user, title, user * title] if self.interaction else [user, title], axis=1)
""" + _LAYERS
_HIDDEN = """\
        self.hidden = [tf.keras.layers.Dense(units, activation="relu") for units in hidden_units]
        self.output_layer = tf.keras.layers.Dense(1)
"""

_LOSS_HEAD = """
class RankingModel(tfrs.Model):
    def __init__(self, rating_model):
        super().__init__()
        self.rating_model = rating_model
        self.task = tfrs.tasks.Ranking(loss=tf.keras.losses.MeanSquaredError(),
                                       metrics=[tf.keras.metrics.RootMeanSquaredError(name="rmse")])

    def call(self, features):
        return self.rating_model(features)

    def compute_loss(self, features, training=False):
"""


def _head(init: str, call: str) -> str:
    return f"""
class DeepCrossHead(tf.keras.layers.Layer):
    def __init__(self, num_cross=1, deep_units=(256, 64), projection_dim=None):
        super().__init__()
{init}
    def call(self, x0):
{call}
"""


_CROSSES = """\
        self.cross_layers = [tfrs.layers.dcn.Cross(projection_dim=projection_dim, kernel_initializer="glorot_uniform")
                             for _ in range(num_cross)]
"""
_DEEP = """\
        self.deep_layers = [tf.keras.layers.Dense(units, activation="relu") for units in deep_units]
        self.output_layer = tf.keras.layers.Dense(1)
"""
_DEEP_CALL = """\
        for layer in self.deep_layers:
            x = layer(x)
        return self.output_layer(x)
"""


def _ndcg(gains: str = "2.0 ** true_ratings[rows] - 1.0", order: str = 'np.argsort(-predicted[rows], kind="stable")',
          ideal: str = "np.sort(gains)[::-1][:m] @ discounts", skip: str = "skipped += 1\n            continue") -> str:
    return f"""
def ndcg_at_k(user_ids, true_ratings, predicted, k=10, users=None):
    user_ids = np.asarray(user_ids)
    true_ratings = np.asarray(true_ratings, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64).reshape(-1)
    if k < 1:
        raise ValueError("k")
    if not len(user_ids) == len(true_ratings) == len(predicted):
        raise ValueError("lengths")
    rows_of = {{}}
    for row, user in enumerate(user_ids):
        rows_of.setdefault(user, []).append(row)
    evaluate = list(rows_of) if users is None else list(dict.fromkeys(np.asarray(users).tolist()))
    scores, skipped = [], 0
    for user in evaluate:
        rows = np.asarray(rows_of.get(user, []), dtype=np.int64)
        gains = {gains}
        m = min(k, len(rows))
        discounts = 1.0 / np.log2(np.arange(2, m + 2))
        ideal = {ideal}
        if len(rows) == 0 or ideal <= 0:
            {skip}
        ranked = gains[{order}][:m]
        scores.append((ranked @ discounts) / ideal)
    if not scores:
        raise ValueError("every user skipped")
    return float(np.mean(scores)), skipped
"""


def _recommend(candidates: str, ranking: str) -> str:
    return f"""
def recommend(user_id, k=10, num_candidates=100):
    if not 1 <= k <= num_candidates:
        raise ValueError("k out of range")
    user_id = as_bytes(user_id)
    query = query_embeddings(retrieval_model, user_request(user_id))[0]
    seen = seen_titles.get(user_id, set())
    order = np.argsort(-(catalogue_vectors @ query), kind="stable")
{candidates}
{ranking}
"""


_WALK = """\
    candidates = []
    for index in order:
        title = catalogue_titles[index]
        if title not in seen and title not in candidates:
            candidates.append(title)
            if len(candidates) == num_candidates:
                break
"""
_RANK_RAW = """\
    raw = np.asarray(best(ranking_batch(user_id, candidates), clip=False)).reshape(-1)
    top = np.argsort(-raw, kind="stable")[:k]
    return [(candidates[i].decode(), float(np.clip(raw[i], 1.0, 5.0))) for i in top]
"""

WRONG_ANSWERS = [
    # Exercise 1: RatingModel.
    WrongAnswer(*_RATING, "the library shortcut: movierec.ranking's MovieRanker on an ids-only FeatureEncoder", """
from movierec.ranking import FeatureEncoder as _FE, MovieRanker as _MR


class RatingModel(tf.keras.Model):
    def __init__(self, user_ids, movie_titles, embedding_dim=32, hidden_units=(256, 64), interaction=False):
        super().__init__()
        encoder = _FE({"user_id": np.asarray(user_ids)}, {"movie_title": np.asarray(movie_titles)},
                      embedding_dim=embedding_dim, side_features=False)
        self.ranker = _MR(encoder, 0.0, cross=False, deep_units=tuple(hidden_units), dropout=0.0, biases=False)

    def call(self, features):
        return self.ranker(features, clip=False)[:, tf.newaxis]
"""),
    WrongAnswer(*_RATING, "no out-of-vocabulary row (Embedding(len(ids), d))", _rating_model(_LOOKUPS + """\
        self.user_vectors = tf.keras.layers.Embedding(len(user_ids), embedding_dim)
        self.title_vectors = tf.keras.layers.Embedding(len(movie_titles), embedding_dim)
        self.hidden = [tf.keras.layers.Dense(units, activation="relu") for units in hidden_units]
        self.output_layer = tf.keras.layers.Dense(1)
""", _CALL)),
    WrongAnswer(*_RATING, "ReLU on the output layer too", _rating_model(_LOOKUPS + _TABLES + """\
        self.hidden = [tf.keras.layers.Dense(units, activation="relu") for units in hidden_units]
        self.output_layer = tf.keras.layers.Dense(1, activation="relu")
""", _CALL)),
    WrongAnswer(*_RATING, "hidden Dense layers without an activation", _rating_model(_LOOKUPS + _TABLES + """\
        self.hidden = [tf.keras.layers.Dense(units) for units in hidden_units]
        self.output_layer = tf.keras.layers.Dense(1)
""", _CALL)),
    WrongAnswer(*_RATING, "exactly two hidden layers hard-coded from hidden_units[0] and [1]", _rating_model(
        _LOOKUPS + _TABLES + """\
        self.hidden = [tf.keras.layers.Dense(hidden_units[0], activation="relu"),
                       tf.keras.layers.Dense(hidden_units[1], activation="relu")]
        self.output_layer = tf.keras.layers.Dense(1)
""", _CALL)),
    WrongAnswer(*_RATING, "interaction ignored: always the plain concatenation", _rating_model(
        _LOOKUPS + _TABLES + _HIDDEN, _VECTORS + """\
        x = tf.concat([user, title], axis=1)
""" + _LAYERS)),
    WrongAnswer(*_RATING, "interaction: the product instead of the two vectors", _rating_model(
        _LOOKUPS + _TABLES + _HIDDEN, _VECTORS + """\
        x = user * title if self.interaction else tf.concat([user, title], axis=1)
""" + _LAYERS)),
    WrongAnswer(*_RATING, "interaction: the product first, then the two vectors", _rating_model(
        _LOOKUPS + _TABLES + _HIDDEN, _VECTORS + """\
        x = tf.concat([user * title, user, title] if self.interaction else [user, title], axis=1)
""" + _LAYERS)),
    WrongAnswer(*_RATING, "interaction: the sum of the vectors instead of their product", _rating_model(
        _LOOKUPS + _TABLES + _HIDDEN, _VECTORS + """\
        x = tf.concat([user, title, user + title] if self.interaction else [user, title], axis=1)
""" + _LAYERS)),
    # Exercise 2: RankingModel.compute_loss.
    WrongAnswer(*_LOSS, "hand-written MSE: (batch,) labels minus (batch, 1) predictions broadcast", _LOSS_HEAD + """\
        predictions = self.rating_model(features, training=training)
        return tf.reduce_mean(tf.square(features["user_rating"] - predictions))
"""),
    WrongAnswer(*_LOSS, "Keras MSE without the task (the RMSE metric never updates)", _LOSS_HEAD + """\
        predictions = self.rating_model(features, training=training)
        return tf.keras.losses.MeanSquaredError()(features["user_rating"], predictions)
"""),
    WrongAnswer(*_LOSS, "training flag not passed on (the next cell's call, copied)", _LOSS_HEAD + """\
        return self.task(labels=features["user_rating"], predictions=self.rating_model(features))
"""),
    WrongAnswer(*_LOSS, "returns the RMSE instead of the MSE", _LOSS_HEAD + """\
        predictions = self.rating_model(features, training=training)
        return tf.sqrt(self.task(labels=features["user_rating"], predictions=predictions))
"""),
    # Exercise 3: DeepCrossHead.
    WrongAnswer(*_HEAD, "every cross layer called on x alone: cross(x)", _head(_CROSSES + _DEEP, """\
        x = x0
        for cross in self.cross_layers:
            x = cross(x)
""" + _DEEP_CALL)),
    WrongAnswer(*_HEAD, "arguments swapped: cross(x, x0)", _head(_CROSSES + _DEEP, """\
        x = x0
        for cross in self.cross_layers:
            x = cross(x, x0)
""" + _DEEP_CALL)),
    WrongAnswer(*_HEAD, "one Cross object repeated num_cross times (shared weights)", _head("""\
        shared = tfrs.layers.dcn.Cross(projection_dim=projection_dim, kernel_initializer="glorot_uniform")
        self.cross_layers = [shared] * num_cross
""" + _DEEP, """\
        x = x0
        for cross in self.cross_layers:
            x = cross(x0, x)
""" + _DEEP_CALL)),
    WrongAnswer(*_HEAD, "the parallel form (the library's): deep branch on x0, concatenated with the cross output",
                _head(_CROSSES + _DEEP, """\
        crossed = x0
        for cross in self.cross_layers:
            crossed = cross(x0, crossed)
        deep = x0
        for layer in self.deep_layers:
            deep = layer(deep)
        return self.output_layer(tf.concat([crossed, deep], axis=1))
""")),
    WrongAnswer(*_HEAD, "ReLU on the output layer", _head(_CROSSES + """\
        self.deep_layers = [tf.keras.layers.Dense(units, activation="relu") for units in deep_units]
        self.output_layer = tf.keras.layers.Dense(1, activation="relu")
""", """\
        x = x0
        for cross in self.cross_layers:
            x = cross(x0, x)
""" + _DEEP_CALL)),
    # Exercise 4: ndcg_at_k.
    WrongAnswer(*_NDCG, "linear gain r instead of 2**r - 1", _ndcg(gains="true_ratings[rows]")),
    WrongAnswer(*_NDCG, "ideal DCG over all of a user's movies, not cut at k",
                _ndcg(ideal="np.sort(gains)[::-1] @ (1.0 / np.log2(np.arange(2, len(rows) + 2)))")),
    WrongAnswer(*_NDCG, "a user with no ratings averaged in as 0",
                _ndcg(skip="skipped += 1\n            scores.append(0.0)\n            continue")),
    WrongAnswer(*_NDCG, "descending order by reversing an ascending argsort (ties come out reversed)",
                _ndcg(order="np.argsort(predicted[rows], kind=\"stable\")[::-1]")),
    # Exercise 5: recommend.
    WrongAnswer(*_RECOMMEND, "truncation: the first k retrieved titles, sorted by their stars", _recommend(_WALK, """\
    stars = np.clip(np.asarray(best(ranking_batch(user_id, candidates[:k]), clip=False)).reshape(-1), 1.0, 5.0)
    pairs = [(t.decode(), float(s)) for t, s in zip(candidates[:k], stars)]
    return sorted(pairs, key=lambda pair: -pair[1])
""")),
    WrongAnswer(*_RECOMMEND, "sorted by the clipped stars (everything above 5 ties)", _recommend(_WALK, """\
    stars = np.asarray(best(ranking_batch(user_id, candidates))).reshape(-1)
    top = np.argsort(-stars, kind="stable")[:k]
    return [(candidates[i].decode(), float(stars[i])) for i in top]
""")),
    WrongAnswer(*_RECOMMEND, "seen titles dropped after cutting the list at num_candidates", _recommend("""\
    candidates = []
    for index in order:
        title = catalogue_titles[index]
        if title not in candidates:
            candidates.append(title)
            if len(candidates) == num_candidates:
                break
    candidates = [t for t in candidates if t not in seen]
""", _RANK_RAW)),
    WrongAnswer(*_RECOMMEND, "the raw score shown as the stars (not clipped for display)", _recommend(_WALK, """\
    raw = np.asarray(best(ranking_batch(user_id, candidates), clip=False)).reshape(-1)
    top = np.argsort(-raw, kind="stable")[:k]
    return [(candidates[i].decode(), float(raw[i])) for i in top]
""")),
    WrongAnswer(*_RECOMMEND, "titles in the catalogue twice not merged", _recommend("""\
    candidates = [catalogue_titles[i] for i in order if catalogue_titles[i] not in seen][:num_candidates]
""", _RANK_RAW)),
]
