"""Plausible wrong answers to lesson 04's exercises; each must fail its exercise's test cell.

Run by ``tests/exercise_harness.py``. ``source`` replaces the whole solution cell.
"""

from exercise_harness import WrongAnswer

_LOSS = ("in_batch_softmax_loss", "test_in_batch_softmax_loss")
_TOP_K = ("top_k_accuracy", "test_top_k_accuracy")
_LOGQ = ("logq_loss_terms", "test_logq_loss_terms")
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
    WrongAnswer(*_LOGQ, "the library shortcut: tfrs.tasks.Retrieval's summed, corrected loss", """
def logq_loss_terms(query_embeddings, candidate_embeddings, batch_movie_ids, train_movie_ids):
    ids, counts = np.unique(train_movie_ids, return_counts=True)
    share = dict(zip(ids.tolist(), (counts / len(train_movie_ids)).tolist()))
    p = tf.constant([share.get(m, 1 / len(train_movie_ids)) for m in batch_movie_ids.numpy().tolist()], tf.float32)
    return tfrs.tasks.Retrieval()(query_embeddings, candidate_embeddings, candidate_sampling_probability=p)
"""),
    WrongAnswer(*_LOGQ, "probabilities counted in the batch, not in the training data", """
def logq_loss_terms(query_embeddings, candidate_embeddings, batch_movie_ids, train_movie_ids):
    ids, index, counts = np.unique(batch_movie_ids.numpy(), return_inverse=True, return_counts=True)
    log_p = tf.math.log(tf.constant(counts[index] / len(index), tf.float32))
    scores = tf.matmul(query_embeddings, candidate_embeddings, transpose_b=True) - log_p[tf.newaxis, :]
    return tf.reduce_logsumexp(scores, axis=1) - tf.linalg.diag_part(scores)
"""),
    WrongAnswer(*_LOGQ, "correction on the rows (the query's movie) instead of the columns", """
def logq_loss_terms(query_embeddings, candidate_embeddings, batch_movie_ids, train_movie_ids):
    ids, counts = np.unique(train_movie_ids, return_counts=True)
    count_of = dict(zip(ids.tolist(), counts.tolist()))
    batch_counts = [count_of.get(m, 1) for m in batch_movie_ids.numpy().tolist()]
    log_p = tf.math.log(tf.constant(batch_counts, tf.float32) / len(train_movie_ids))
    scores = tf.matmul(query_embeddings, candidate_embeddings, transpose_b=True) - log_p[:, tf.newaxis]
    return tf.reduce_logsumexp(scores, axis=1) - tf.linalg.diag_part(scores)
"""),
    WrongAnswer(*_LOGQ, "log p added instead of subtracted", """
def logq_loss_terms(query_embeddings, candidate_embeddings, batch_movie_ids, train_movie_ids):
    ids, counts = np.unique(train_movie_ids, return_counts=True)
    count_of = dict(zip(ids.tolist(), counts.tolist()))
    batch_counts = [count_of.get(m, 1) for m in batch_movie_ids.numpy().tolist()]
    log_p = tf.math.log(tf.constant(batch_counts, tf.float32) / len(train_movie_ids))
    scores = tf.matmul(query_embeddings, candidate_embeddings, transpose_b=True) + log_p[tf.newaxis, :]
    return tf.reduce_logsumexp(scores, axis=1) - tf.linalg.diag_part(scores)
"""),
    WrongAnswer(*_LOGQ, "only the negatives corrected (the true pair's score left as is)", """
def logq_loss_terms(query_embeddings, candidate_embeddings, batch_movie_ids, train_movie_ids):
    ids, counts = np.unique(train_movie_ids, return_counts=True)
    count_of = dict(zip(ids.tolist(), counts.tolist()))
    batch_counts = [count_of.get(m, 1) for m in batch_movie_ids.numpy().tolist()]
    log_p = tf.math.log(tf.constant(batch_counts, tf.float32) / len(train_movie_ids))
    scores = tf.matmul(query_embeddings, candidate_embeddings, transpose_b=True)
    return tf.reduce_logsumexp(scores - log_p[tf.newaxis, :], axis=1) - tf.linalg.diag_part(scores)
"""),
    WrongAnswer(*_LOGQ, "an unseen movie counted as 0 (log 0 = -inf)", """
def logq_loss_terms(query_embeddings, candidate_embeddings, batch_movie_ids, train_movie_ids):
    ids, counts = np.unique(train_movie_ids, return_counts=True)
    count_of = dict(zip(ids.tolist(), counts.tolist()))
    batch_counts = [count_of.get(m, 0) for m in batch_movie_ids.numpy().tolist()]
    log_p = tf.math.log(tf.constant(batch_counts, tf.float32) / len(train_movie_ids))
    scores = tf.matmul(query_embeddings, candidate_embeddings, transpose_b=True) - log_p[tf.newaxis, :]
    return tf.reduce_logsumexp(scores, axis=1) - tf.linalg.diag_part(scores)
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
    WrongAnswer(*_RECOMMEND, "the untrained OOV embedding for unknown users (no fallback)", """
def recommend(user_id, k=10):
    if not 1 <= k <= len(movie_titles):
        raise ValueError("k out of range")
    user_id = user_id.encode() if isinstance(user_id, str) else user_id
    scores = movie_vectors @ id_model.query_tower({"user_id": tf.constant([user_id])}).numpy()[0]
    return [movie_titles[i].decode() for i in np.argsort(-scores, kind="stable")[:k]], user_id in training_users
"""),
    WrongAnswer(*_RECOMMEND, "membership tested with the str id: every user looks new", """
def recommend(user_id, k=10):
    if not 1 <= k <= len(movie_titles):
        raise ValueError("k out of range")
    if user_id not in training_users:
        return [movie_titles[i].decode() for i in np.argsort(-movie_rating_counts, kind="stable")[:k]], False
    user_id = user_id.encode() if isinstance(user_id, str) else user_id
    scores = movie_vectors @ id_model.query_tower({"user_id": tf.constant([user_id])}).numpy()[0]
    return [movie_titles[i].decode() for i in np.argsort(-scores, kind="stable")[:k]], True
"""),
    WrongAnswer(*_RECOMMEND, "the least rated movies for unknown users (ascending sort)", """
def recommend(user_id, k=10):
    if not 1 <= k <= len(movie_titles):
        raise ValueError("k out of range")
    user_id = user_id.encode() if isinstance(user_id, str) else user_id
    if user_id not in training_users:
        return [movie_titles[i].decode() for i in np.argsort(movie_rating_counts, kind="stable")[:k]], False
    scores = movie_vectors @ id_model.query_tower({"user_id": tf.constant([user_id])}).numpy()[0]
    return [movie_titles[i].decode() for i in np.argsort(-scores, kind="stable")[:k]], True
"""),
    WrongAnswer(*_RECOMMEND, "flag inverted (True for the popularity list)", """
def recommend(user_id, k=10):
    if not 1 <= k <= len(movie_titles):
        raise ValueError("k out of range")
    user_id = user_id.encode() if isinstance(user_id, str) else user_id
    if user_id not in training_users:
        return [movie_titles[i].decode() for i in np.argsort(-movie_rating_counts, kind="stable")[:k]], True
    scores = movie_vectors @ id_model.query_tower({"user_id": tf.constant([user_id])}).numpy()[0]
    return [movie_titles[i].decode() for i in np.argsort(-scores, kind="stable")[:k]], False
"""),
    WrongAnswer(*_RECOMMEND, "no validation of k", """
def recommend(user_id, k=10):
    user_id = user_id.encode() if isinstance(user_id, str) else user_id
    if user_id not in training_users:
        return [movie_titles[i].decode() for i in np.argsort(-movie_rating_counts, kind="stable")[:k]], False
    scores = movie_vectors @ id_model.query_tower({"user_id": tf.constant([user_id])}).numpy()[0]
    return [movie_titles[i].decode() for i in np.argsort(-scores, kind="stable")[:k]], True
"""),
    WrongAnswer(*_RECOMMEND, "popularity ties in arbitrary order (default, unstable sort)", """
def recommend(user_id, k=10):
    if not 1 <= k <= len(movie_titles):
        raise ValueError("k out of range")
    user_id = user_id.encode() if isinstance(user_id, str) else user_id
    if user_id not in training_users:
        return [movie_titles[i].decode() for i in np.argsort(-movie_rating_counts)[:k]], False
    scores = movie_vectors @ id_model.query_tower({"user_id": tf.constant([user_id])}).numpy()[0]
    return [movie_titles[i].decode() for i in np.argsort(-scores, kind="stable")[:k]], True
"""),
]
