# DO NOT EDIT — generated from solutions/04_retrieval.py by `python -m grader build`: edit the lesson instead.
"""Building blocks from lesson 04_retrieval: Lesson 04 — Retrieval: a two-tower model with TensorFlow Recommenders.

The cells tagged ``export`` in solutions/04_retrieval.py, in lesson order; each block
names the section of the lesson that explains it.
"""

import time

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from movierec.dataset import load_ratings, random_split, to_numpy
from movierec.preprocessing import (
    CANDIDATE_FEATURES,
    QUERY_FEATURES,
    build_candidate_tower,
    build_query_tower,
    feature_columns,
    read_features,
)
from movierec.setup import quick_mode, training_slice


# --- from solutions/04_retrieval.py, section: 1. Implicit feedback
def take_rows(columns: dict, rows: np.ndarray) -> dict:
    """The given rows of every column."""
    return {key: tf.gather(value, rows) for key, value in columns.items()}


def split_rows(split, columns: dict, **options) -> list[np.ndarray]:
    """Run one of lesson 02's split functions on row numbers; the rows of each part, in order.

    ``columns`` must hold ``user_id`` and ``timestamp`` (what the temporal splits look at);
    ``options`` go to ``split``. Later lessons read the ratings once and split them with this too.
    """
    rows = tf.data.Dataset.from_tensor_slices(
        {"row": np.arange(len(columns["user_id"])), "user_id": columns["user_id"], "timestamp": columns["timestamp"]}
    )
    return [to_numpy(part, ("row",))["row"].astype(np.int64) for part in split(rows, **options)]


def read_train_test(seed: int = 42) -> tuple[dict, dict]:
    """Lesson 02's random split as columns, reading the ratings once: ``(train, test)``.

    ``train`` is the tutorial's 80,000 training ratings (the split's train and validation
    parts, in that order), for the lessons that tune nothing; ``test`` the 20,000 test
    ratings. Each is a ``read_features`` dict, exactly the rows and order of the lazy split.
    """
    columns = read_features(load_ratings())
    train_rows, validation_rows, test_rows = split_rows(random_split, columns, seed=seed)
    return take_rows(columns, np.concatenate([train_rows, validation_rows])), take_rows(columns, test_rows)


# --- from solutions/04_retrieval.py, section: 4. A `tfrs.Model`
TOP_KS = (1, 10, 50, 100)
"""The cut-offs at which the course reports top-k accuracy."""


class CorpusTopK(tfrs.layers.factorized_top_k.TopK):
    """Exact top-k over the whole movie catalogue, embedding the catalogue on every call.

    ``BruteForce`` stores candidate vectors computed once, so it goes stale as soon as the
    candidate tower trains further. This layer keeps the raw catalogue features instead
    and runs the candidate tower on them each time it is queried, so a
    ``FactorizedTopK`` metric built on it is always up to date: it can be evaluated after
    every epoch (validation curves) without rebuilding anything. With 1,682 movies that
    costs a few milliseconds per call. Identifiers returned are ``movie_id`` values.
    """

    def __init__(self, candidate_tower: tf.keras.Model, catalogue: dict, k: int = 100, name: str = "corpus_top_k"):
        super().__init__(k=k, name=name)
        self.candidate_tower = candidate_tower
        self._catalogue = {key: tf.constant(value) for key, value in catalogue.items()}
        self._identifiers = self._catalogue["movie_id"]

    def identifiers(self) -> tf.Tensor:
        """The catalogue's ``movie_id`` values, in catalogue order (the columns of :meth:`vectors`)."""
        return self._identifiers

    def vectors(self) -> tf.Tensor:
        """The catalogue's vectors under the candidate tower's current weights, in catalogue order."""
        return self.candidate_tower(self._catalogue)

    def index(self, candidates=None, identifiers=None):
        raise NotImplementedError("CorpusTopK embeds its catalogue itself; there is nothing to index")

    def index_from_dataset(self, candidates):
        raise NotImplementedError("CorpusTopK embeds its catalogue itself; there is nothing to index")

    def call(self, queries: tf.Tensor, k: int | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        k = self._k if k is None else k
        scores = tf.matmul(queries, self.vectors(), transpose_b=True)
        values, indices = tf.math.top_k(scores, k=k)
        return values, tf.gather(self._identifiers, indices)

    def is_exact(self) -> bool:
        return True


class RetrievalModel(tfrs.Model):
    """Two-tower retrieval model trained with an in-batch softmax.

    Attributes:
        query_tower: raw query feature dict (batched) -> ``(batch, d)`` embeddings.
        candidate_tower: raw movie feature dict (batched) -> ``(batch, d)`` embeddings.
        task: a ``tfrs.tasks.Retrieval`` whose ``FactorizedTopK`` metric ranks every
            movie of the catalogue (see :class:`CorpusTopK`).
        corpus: that metric's :class:`CorpusTopK`; ``corpus.vectors()`` embeds the
            catalogue with the current weights.

    ``movie_counts`` (movie id -> number of training ratings) switches on the
    popularity (log-Q) correction: each in-batch logit gets ``-log p(movie)``
    subtracted, ``p`` being the movie's share of the training ratings, so the loss
    stops penalising popular movies for turning up as negatives more often.
    Metrics are computed only when ``training`` is false (evaluation), because ranking
    the whole catalogue dominates the cost of a training step.
    """

    def __init__(
        self,
        query_tower: tf.keras.Model,
        candidate_tower: tf.keras.Model,
        catalogue: dict,
        *,
        movie_counts: dict | None = None,
        ks: tuple[int, ...] = TOP_KS,
    ) -> None:
        super().__init__()
        self.query_tower = query_tower
        self.candidate_tower = candidate_tower
        self.ks = tuple(ks)
        self.popularity_correction = movie_counts is not None
        if self.popularity_correction:
            ids = np.asarray(list(movie_counts))
            counts = np.maximum(np.asarray([movie_counts[i] for i in ids], dtype=np.float64), 1.0)
            self._count_lookup = tf.keras.layers.StringLookup(vocabulary=ids, mask_token=None)
            # Index 0 is the lookup's out-of-vocabulary slot: treat unseen movies as seen once.
            share = np.concatenate([[1.0], counts]) / counts.sum()
            self._sampling_probability = tf.constant(share, dtype=tf.float32)
        self.corpus = CorpusTopK(candidate_tower, catalogue, k=max(ks))
        metric = tfrs.metrics.FactorizedTopK(self.corpus, ks=ks)
        self.task = tfrs.tasks.Retrieval(metrics=metric)
        # The task's loss is a sum over the batch; this tracks its per-example average over
        # an epoch, so training and held-out curves are comparable (``loss_per_example``).
        self.loss_per_example = tf.keras.metrics.Mean(name="loss_per_example")

    def compute_loss(self, features: dict, training: bool = False) -> tf.Tensor:
        queries = self.query_tower(features)
        candidates = self.candidate_tower(features)
        probability = self.sampling_probability(features["movie_id"])
        loss = self.task(queries, candidates, candidate_sampling_probability=probability, compute_metrics=not training)
        batch_size = tf.cast(tf.shape(queries)[0], tf.float32)
        self.loss_per_example.update_state(loss / batch_size, sample_weight=batch_size)
        return loss

    def sampling_probability(self, movie_ids: tf.Tensor) -> tf.Tensor | None:
        """Each movie's share of the training ratings (the log-Q correction's ``p``), or ``None`` without it."""
        if not self.popularity_correction:
            return None
        return tf.gather(self._sampling_probability, self._count_lookup(movie_ids))


# --- from solutions/04_retrieval.py, section: 5. The id-only baseline
class _EarlyStoppingRule:
    """Keras's ``EarlyStopping(mode="max", restore_best_weights=True)`` decision, applied epoch by epoch.

    An epoch improves when its value is strictly higher than the best so far. After
    ``patience`` epochs in a row without improvement the rule *fires*: ``stopped_epoch``
    is set, and later epochs are ignored. ``best_epoch`` and ``best_weights`` belong to
    the best epoch before it fired. Keeping the decision apart from the training loop
    lets a run go on past it (for a longer curve) without changing what it chose.
    """

    def __init__(self, monitor: str, patience: int) -> None:
        self.monitor, self.patience = monitor, patience
        self.best, self.best_epoch, self.best_weights = -np.inf, 0, None
        self.wait, self.stopped_epoch = 0, None

    def update(self, epoch: int, value: float, get_weights) -> None:
        """Take the monitored ``value`` after ``epoch`` (1-based); ``get_weights()`` copies the weights."""
        if self.stopped_epoch is not None:
            return
        if self.best_weights is None:  # as Keras: the first epoch's weights, even if it never improves
            self.best_weights, self.best_epoch = get_weights(), epoch
        self.wait += 1
        if value > self.best:
            self.best, self.best_epoch, self.best_weights, self.wait = value, epoch, get_weights(), 0
        elif self.wait >= self.patience and epoch > 1:
            self.stopped_epoch = epoch


class _EpochLog(tf.keras.callbacks.Callback):
    """Per epoch: the CPU time, copies of the weights asked for, and the early-stopping rule."""

    def __init__(self, stopping: _EarlyStoppingRule | None, run_at_least: int, keep_epochs: tuple[int, ...]) -> None:
        super().__init__()
        self.stopping, self.run_at_least, self.keep_epochs = stopping, run_at_least, tuple(keep_epochs)
        self.started = time.process_time()
        self.finished: dict[int, float] = {}
        self.kept: dict[int, list] = {}

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        epoch += 1  # Keras counts from 0
        self.finished[epoch] = time.process_time()
        if epoch in self.keep_epochs:
            self.kept[epoch] = self.model.get_weights()
        if self.stopping is not None:
            value = (logs or {}).get(self.stopping.monitor)
            if value is None:
                raise KeyError(f"early stopping needs {self.stopping.monitor!r}; the epoch logged {sorted(logs or {})}")
            self.stopping.update(epoch, float(value), self.model.get_weights)
            if self.stopping.stopped_epoch is not None and epoch >= self.run_at_least:
                self.model.stop_training = True


def _rows_of(columns: dict):
    """A ``tf.data`` map function: a batch of row numbers -> those rows of every column."""

    def gather(rows: tf.Tensor) -> dict:
        return {key: tf.gather(value, rows) for key, value in columns.items()}

    return gather


def train_retrieval_model(
    train: tf.data.Dataset | dict,
    movies: tf.data.Dataset | dict,
    *,
    features: bool = True,
    epochs: int | None = None,
    seed: int = 42,
    batch_size: int = 1024,
    learning_rate: float = 0.1,
    embedding_dim: int = 32,
    popularity_correction: bool = True,
    time_features: str = "clock",
    l2: float = 0.0,
    hidden_units: tuple[int, ...] = (),
    validation_data: tf.data.Dataset | dict | None = None,
    validation_batch_size: int = 1024,
    validation_loss: bool = False,
    max_epochs: int | None = None,
    patience: int = 2,
    run_at_least: int = 0,
    keep_epochs: tuple[int, ...] = (),
    verbose: int = 0,
) -> RetrievalModel:
    """Build and train the course's two-tower retrieval model; returns the trained model.

    Args:
        train: the training ratings, a raw ``tf.data.Dataset`` (e.g. from
            ``random_split``) or the dict returned by ``read_features``.
        movies: the catalogue, ``load_movies()`` or its ``read_features`` dict. It fixes
            the movie vocabulary and the candidates the metric ranks.
        features: ``True`` for the towers with side features (lesson 03), ``False`` for
            id-only towers (user and movie embeddings only).
        epochs: passes over the training data. ``None`` means: with
            ``validation_data``, **early stopping** — train up to ``max_epochs``
            (default 15, or 2 in ``movierec.setup.quick_mode()``, which also trains and
            validates on a slice of the rows), stop when the
            validation top-100 accuracy has not improved for ``patience`` epochs, and
            keep the weights of the best epoch (``model.best_epoch``); without it, 3
            epochs, or 1 in quick mode.
        seed: seeds weights and shuffling, so a run repeats exactly.
        batch_size, learning_rate: Adagrad training settings.
        embedding_dim: size of the query and candidate vectors.
        popularity_correction: subtract ``log p(movie)`` from the in-batch logits.
        time_features: what the query tower knows about the time of the query:
            ``"clock"`` (default), ``"none"`` or the leaky ``"session"`` counter-example
            (lesson 03's ``QueryTower``). Ignored by id-only towers.
        l2, hidden_units: regularisation of the id embeddings and optional ReLU layers,
            passed to both towers.
        validation_data: optional validation ratings (dataset or dict, never the test
            set); top-k metrics over the catalogue are then computed after every epoch
            (into ``model.curves``) and drive early stopping when ``epochs`` is ``None``.
        validation_batch_size: batch size of the validation pass. The top-k accuracies do
            not depend on it; the held-out in-batch loss does (a larger batch means more
            negatives per example), so compare training and validation loss curves only
            when it equals ``batch_size`` (the default 1,024 for both).
        validation_loss: also log that held-out loss after every epoch
            (``val_loss_per_example``), for drawing loss curves. Off by default: early
            stopping reads only the accuracies, and the loss costs about as much again.
        run_at_least: with early stopping, keep training (and recording the validation
            curve) until this many epochs even after the stopping rule has fired; the
            kept weights, ``best_epoch`` and ``train_seconds`` are still those of the run
            early stopping alone would have made, so one run gives both a fixed-length
            curve and an early-stopped model.
        keep_epochs: epochs after which to keep a copy of the weights, in
            ``model.weights_after[epoch]`` (``model.set_weights`` puts one back); training
            runs at least that long. One run then also gives, say, the 3-epoch model.
        verbose: Keras ``fit`` verbosity.

    Returns:
        The trained :class:`RetrievalModel`. ``model.query_tower`` and
        ``model.candidate_tower`` map raw feature dicts to vectors,
        ``model.curves`` holds the curves, one value per epoch (``loss_per_example`` and,
        with validation data, the ``val_factorized_top_k/...`` accuracies and, with
        ``validation_loss``, ``val_loss_per_example``; ``model.history.history`` too, until
        Keras replaces ``model.history`` at the next ``evaluate``), ``model.best_epoch``
        the epoch whose weights were kept and
        ``model.train_seconds`` the CPU time of ``fit`` (``time.process_time``, which
        other jobs on the machine do not inflate the way they inflate wall time), and
        ``model.seconds_after[epoch]`` the CPU time up to the end of each epoch.
    """
    tf.keras.utils.set_random_seed(seed)
    keys = QUERY_FEATURES + CANDIDATE_FEATURES if features else ("user_id", "movie_id")
    columns = training_slice(feature_columns(train, keys))
    catalogue = feature_columns(movies, CANDIDATE_FEATURES)
    query_tower = build_query_tower(
        columns,
        embedding_dim=embedding_dim,
        use_features=features,
        time_features=time_features,
        hidden_units=hidden_units,
        l2=l2,
    )
    candidate_tower = build_candidate_tower(
        catalogue, embedding_dim=embedding_dim, use_features=features, hidden_units=hidden_units, l2=l2
    )
    movie_counts = None
    if popularity_correction:
        ids, counts = np.unique(columns["movie_id"].numpy(), return_counts=True)
        movie_counts = dict(zip(ids, counts))
    model = RetrievalModel(query_tower, candidate_tower, catalogue, movie_counts=movie_counts)
    model.compile(optimizer=tf.keras.optimizers.Adagrad(learning_rate))
    # Create every weight and the optimiser's accumulators now, on one row: left to the first training step, they
    # are created inside fit's traced function, which TensorFlow then traces a second time. The initial
    # values are the same either way, and so is the trained model.
    one_row = {key: value[:1] for key, value in columns.items()}
    query_tower(one_row), candidate_tower(one_row)
    model.optimizer.build(model.trainable_variables)
    size = int(columns["movie_id"].shape[0])
    # A seeded shuffle permutes positions whatever the elements hold, so shuffling row numbers and gathering
    # each batch's rows gives exactly the batches of shuffling the rows themselves, with a fraction of the
    # tf.data work: one integer per rating instead of a dict of features.
    batches = tf.data.Dataset.range(size).shuffle(size, seed=seed).batch(batch_size).map(_rows_of(columns))
    callbacks = []
    if validation_data is not None:  # measured by a callback, before the log that reads it
        callbacks.append(_Validation(training_slice(feature_columns(validation_data, keys)), validation_batch_size,
                                     with_loss=validation_loss))
    monitor = f"val_{model.task.factorized_metrics[0].name}/top_100_categorical_accuracy"
    stopping = None
    if epochs is None and validation_data is not None:
        epochs = max_epochs if max_epochs is not None else (2 if quick_mode() else 15)
        stopping = _EarlyStoppingRule(monitor, patience)
        epochs = max(epochs, run_at_least, *keep_epochs)
    elif epochs is None:
        epochs = 1 if quick_mode() else 3
    log = _EpochLog(stopping, run_at_least=max(run_at_least, *keep_epochs, 0), keep_epochs=keep_epochs)
    history = model.fit(
        batches.prefetch(tf.data.AUTOTUNE),
        epochs=epochs,
        callbacks=[*callbacks, log],
        verbose=verbose,
    )
    model.curves = history.history  # Keras replaces model.history at the next evaluate()
    model.seconds_after = {epoch: seconds - log.started for epoch, seconds in log.finished.items()}
    model.weights_after = log.kept
    if stopping is not None:
        model.best_epoch = stopping.best_epoch
        model.set_weights(stopping.best_weights)
        model.train_seconds = model.seconds_after[stopping.stopped_epoch or len(history.history[monitor])]
    else:
        model.best_epoch = epochs
        model.train_seconds = model.seconds_after[epochs]
    return model


def _top_k_accuracies(model: RetrievalModel, columns: dict, *, batch_size: int = 4096,
                      queries: np.ndarray | None = None) -> dict[int, float]:
    """``{k: top-k accuracy}`` of held-out ``columns`` (a dict of feature tensors), for each k of ``model.ks``.

    A rating is a hit at ``k`` when fewer than ``k`` catalogue movies score strictly
    higher than its own movie — the count ``tfrs.metrics.FactorizedTopK`` makes. Here the
    catalogue is embedded once and each chunk of ratings is scored with one matrix
    product; the true movie's score is read from the same matrix as the others', so a
    movie never beats itself through rounding.
    """
    vectors = model.corpus.vectors().numpy()
    column_of = {movie: i for i, movie in enumerate(model.corpus.identifiers().numpy().tolist())}
    truth = np.array([column_of[movie] for movie in columns["movie_id"].numpy().tolist()], dtype=np.int64)
    queries = query_embeddings(model, columns, batch_size=batch_size) if queries is None else queries
    better = [np.zeros(0, dtype=np.int64)]
    for start in range(0, len(truth), batch_size):
        scores = queries[start : start + batch_size] @ vectors.T
        positive = scores[np.arange(len(scores)), truth[start : start + batch_size]]
        better.append(np.sum(scores > positive[:, None], axis=1))
    better = np.concatenate(better)
    return {k: float(np.mean(better < k)) for k in model.ks}


def _held_out_loss(model: RetrievalModel, columns: dict, batch_size: int, queries: np.ndarray | None = None) -> float:
    """The in-batch loss per example of held-out ``columns``, batch by batch, as ``model.evaluate`` would log it.

    The towers embed every rating once (``queries`` may be passed in, already computed);
    each batch's loss — ``tfrs.tasks.Retrieval``'s softmax cross-entropy of every query
    against the batch's candidates, less ``log p`` with the log-Q correction, summed —
    is then a few NumPy operations, instead of an eager call of the task per batch.
    """
    count = int(columns["movie_id"].shape[0])
    if count == 0:
        return 0.0
    queries = query_embeddings(model, columns) if queries is None else queries
    chunks = ({key: value[start : start + 4096] for key, value in columns.items()} for start in range(0, count, 4096))
    candidates = np.concatenate([model.candidate_tower(chunk).numpy() for chunk in chunks])
    probability = model.sampling_probability(columns["movie_id"])
    log_p = np.zeros(count) if probability is None else np.log(probability.numpy().astype(np.float64))
    total = 0.0
    for start in range(0, count, batch_size):
        rows = slice(start, start + batch_size)
        logits = queries[rows].astype(np.float64) @ candidates[rows].T.astype(np.float64) - log_p[rows][None, :]
        peak = logits.max(axis=1)
        log_sum = peak + np.log(np.exp(logits - peak[:, None]).sum(axis=1))
        total += float(np.sum(log_sum - np.diag(logits)))
    return total / count


class _Validation(tf.keras.callbacks.Callback):
    """After every epoch, measures the validation split into the epoch's logs, under Keras's own names.

    ``val_factorized_top_k/top_{k}_categorical_accuracy`` and ``val_loss_per_example`` are
    what ``fit(validation_data=...)`` would log through the model's ``FactorizedTopK``
    metric; that pass embeds the whole catalogue again for every validation batch, and
    costs about a third of a training epoch. Embedding it once per epoch and scoring all
    validation ratings with one matrix product gives the same counts for a fraction of
    that. The loss (only ``with_loss``) is still computed batch by batch (``batch_size``),
    because an in-batch loss depends on its batch. It runs before the callbacks that read
    these logs.
    """

    def __init__(self, columns: dict, batch_size: int, *, with_loss: bool = False) -> None:
        super().__init__()
        self.columns, self.batch_size, self.with_loss = columns, batch_size, with_loss

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None:
            return
        name = self.model.task.factorized_metrics[0].name
        queries = query_embeddings(self.model, self.columns)  # shared by the accuracies and the loss
        for k, value in _top_k_accuracies(self.model, self.columns, queries=queries).items():
            logs[f"val_{name}/top_{k}_categorical_accuracy"] = value
        if self.with_loss:
            logs["val_loss_per_example"] = _held_out_loss(self.model, self.columns, self.batch_size, queries)


def evaluate_top_k(model: RetrievalModel, test: tf.data.Dataset | dict, *, batch_size: int = 4096) -> dict[int, float]:
    """Top-k accuracy of ``model`` on held-out ratings, ranking every movie of the catalogue.

    For each rating, the user's query vector scores all movies; the rating counts as a
    hit at ``k`` when fewer than ``k`` movies score strictly higher than its own movie —
    the count ``tfrs.metrics.FactorizedTopK`` makes, done with one matrix product per
    chunk of ``batch_size`` ratings rather than a Keras evaluation pass, which would also
    compute an in-batch loss that nobody reads.

    Returns:
        ``{k: accuracy}`` for each k of the model's metric (``TOP_KS`` by default).
    """
    return _top_k_accuracies(model, feature_columns(test, QUERY_FEATURES + CANDIDATE_FEATURES), batch_size=batch_size)


def candidate_embeddings(
    model: RetrievalModel, movies: tf.data.Dataset | dict, *, key: str = "movie_title"
) -> tuple[np.ndarray, np.ndarray]:
    """Embed the whole catalogue: ``(keys, vectors)`` with one row per movie, in catalogue order.

    Args:
        model: a trained :class:`RetrievalModel`.
        movies: ``load_movies()`` or its ``read_features`` dict (1,682 movies).
        key: the feature returned alongside the vectors, ``"movie_title"`` (default) or
            ``"movie_id"``. MovieLens 100k has 18 titles under two ids each, so titles
            are not unique identifiers; ids are.

    Returns:
        ``keys``: array of ``bytes`` of shape ``(n,)``; ``vectors``: float32 array of
        shape ``(n, embedding_dim)``, row ``i`` belonging to ``keys[i]``. Ready for
        ``BruteForce.index(vectors, keys)`` or an Annoy index.
    """
    catalogue = feature_columns(movies, CANDIDATE_FEATURES)
    vectors = model.candidate_tower(catalogue).numpy().astype(np.float32)
    return catalogue[key].numpy(), vectors


def query_embeddings(model: RetrievalModel, features: dict, *, batch_size: int = 4096) -> np.ndarray:
    """Query vectors for a batch of raw query features (a dict of equal-length tensors).

    Genres and other keys the query tower does not read may be present (ragged or not).
    Returns a float32 array of shape ``(n, embedding_dim)``.
    """
    n = int(tf.shape(features["user_id"])[0])
    parts = []
    for start in range(0, n, batch_size):
        chunk = {key: value[start : start + batch_size] for key, value in features.items()}
        parts.append(model.query_tower(chunk).numpy())
    if not parts:
        return np.zeros((0, model.query_tower.embedding_dim), dtype=np.float32)
    return np.concatenate(parts).astype(np.float32)
