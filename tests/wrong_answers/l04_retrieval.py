"""Plausible wrong answers to lesson 04's exercises; each must fail its exercise's test cell.

Run by ``tests/exercise_harness.py``. ``source`` replaces the whole solution cell.
"""

from exercise_harness import WrongAnswer

_LOSS = ("in_batch_softmax_loss", "test_in_batch_softmax_loss")
_TOP_K = ("top_k_accuracy", "test_top_k_accuracy")
_MODEL = ("two_tower_model", "test_two_tower_model")
_INDEX = ("build_index", "test_build_index")
_RECOMMEND = ("recommend", "test_recommend")

WRONG_ANSWERS = [
    WrongAnswer(*_LOSS, "the library shortcut: tfrs.tasks.Retrieval's summed loss", """
def in_batch_softmax_loss(query_embeddings, candidate_embeddings):
    return tfrs.tasks.Retrieval()(query_embeddings, candidate_embeddings)
"""),
    WrongAnswer(*_LOSS, "log-sum-exp over the wrong axis (columns)", """
def in_batch_softmax_loss(query_embeddings, candidate_embeddings):
    scores = tf.matmul(query_embeddings, candidate_embeddings, transpose_b=True)
    return tf.reduce_logsumexp(scores, axis=0) - tf.linalg.diag_part(scores)
"""),
    WrongAnswer(*_LOSS, "naive log(sum(exp)) that overflows", """
def in_batch_softmax_loss(query_embeddings, candidate_embeddings):
    scores = tf.matmul(query_embeddings, candidate_embeddings, transpose_b=True)
    return tf.math.log(tf.reduce_sum(tf.exp(scores), axis=1)) - tf.linalg.diag_part(scores)
"""),
    WrongAnswer(*_LOSS, "averaged terms (divided by the batch size)", """
def in_batch_softmax_loss(query_embeddings, candidate_embeddings):
    scores = tf.matmul(query_embeddings, candidate_embeddings, transpose_b=True)
    terms = tf.reduce_logsumexp(scores, axis=1) - tf.linalg.diag_part(scores)
    return terms / tf.cast(tf.shape(scores)[0], tf.float32)
"""),
    WrongAnswer(*_TOP_K, "off by one: better <= k", """
def top_k_accuracy(query_embeddings, true_candidate_embeddings, candidate_embeddings, k):
    positive = tf.reduce_sum(query_embeddings * true_candidate_embeddings, axis=1, keepdims=True)
    scores = tf.matmul(query_embeddings, candidate_embeddings, transpose_b=True)
    better = tf.reduce_sum(tf.cast(scores > positive, tf.int32), axis=1)
    return float(tf.reduce_mean(tf.cast(better <= k, tf.float32)))
"""),
    WrongAnswer(*_TOP_K, "ties counted against the true movie (>=)", """
def top_k_accuracy(query_embeddings, true_candidate_embeddings, candidate_embeddings, k):
    positive = tf.reduce_sum(query_embeddings * true_candidate_embeddings, axis=1, keepdims=True)
    scores = tf.matmul(query_embeddings, candidate_embeddings, transpose_b=True)
    better = tf.reduce_sum(tf.cast(scores >= positive, tf.int32), axis=1) - 1
    return float(tf.reduce_mean(tf.cast(better < k, tf.float32)))
"""),
    WrongAnswer(*_TOP_K, "returns a tensor, not a Python float", """
def top_k_accuracy(query_embeddings, true_candidate_embeddings, candidate_embeddings, k):
    positive = tf.reduce_sum(query_embeddings * true_candidate_embeddings, axis=1, keepdims=True)
    scores = tf.matmul(query_embeddings, candidate_embeddings, transpose_b=True)
    better = tf.reduce_sum(tf.cast(scores > positive, tf.int32), axis=1)
    return tf.reduce_mean(tf.cast(better < k, tf.float32))
"""),
    WrongAnswer(*_MODEL, "metrics computed while training (compute_metrics=training)", """
class TwoTowerModel(tfrs.Model):
    def __init__(self, query_tower, candidate_tower, task):
        super().__init__()
        self.query_tower, self.candidate_tower, self.task = query_tower, candidate_tower, task

    def compute_loss(self, features, training=False):
        return self.task(self.query_tower(features), self.candidate_tower(features), compute_metrics=training)
"""),
    WrongAnswer(*_MODEL, "the candidate tower on the query side too", """
class TwoTowerModel(tfrs.Model):
    def __init__(self, query_tower, candidate_tower, task):
        super().__init__()
        self.query_tower, self.candidate_tower, self.task = query_tower, candidate_tower, task

    def compute_loss(self, features, training=False):
        vectors = self.candidate_tower(features)
        return self.task(vectors, vectors, compute_metrics=not training)
"""),
    WrongAnswer(*_INDEX, "titles sorted apart from their vectors", """
def build_index(model, movie_features, k=10):
    vectors = model.candidate_tower(movie_features)
    titles = np.sort(movie_features["movie_title"].numpy())
    return tfrs.layers.factorized_top_k.BruteForce(model.query_tower, k=k).index(vectors, titles)
"""),
    WrongAnswer(*_INDEX, "k ignored (always 10)", """
def build_index(model, movie_features, k=10):
    vectors = model.candidate_tower(movie_features)
    index = tfrs.layers.factorized_top_k.BruteForce(model.query_tower, k=10)
    return index.index(vectors, movie_features["movie_title"])
"""),
    WrongAnswer(*_RECOMMEND, "ascending order (worst first)", """
def recommend(user_id, k=10):
    if not 1 <= k <= len(movie_titles):
        raise ValueError("k out of range")
    user_id = user_id.encode() if isinstance(user_id, str) else user_id
    scores = movie_vectors @ id_model.query_tower({"user_id": tf.constant([user_id])}).numpy()[0]
    return [movie_titles[i].decode() for i in np.argsort(scores)[:k]]
"""),
    WrongAnswer(*_RECOMMEND, "no validation of k", """
def recommend(user_id, k=10):
    user_id = user_id.encode() if isinstance(user_id, str) else user_id
    scores = movie_vectors @ id_model.query_tower({"user_id": tf.constant([user_id])}).numpy()[0]
    return [movie_titles[i].decode() for i in np.argsort(-scores, kind="stable")[:k]]
"""),
    WrongAnswer(*_RECOMMEND, "titles left as bytes", """
def recommend(user_id, k=10):
    if not 1 <= k <= len(movie_titles):
        raise ValueError("k out of range")
    user_id = user_id.encode() if isinstance(user_id, str) else user_id
    scores = movie_vectors @ id_model.query_tower({"user_id": tf.constant([user_id])}).numpy()[0]
    return [movie_titles[i] for i in np.argsort(-scores, kind="stable")[:k]]
"""),
]
