# DO NOT EDIT — generated from solutions/05_ranking.py by `python -m grader build`: edit the lesson instead.
"""Building blocks from lesson 05_ranking: Lesson 05 — Ranking: predicting how much a user will like a movie.

The cells tagged ``export`` in solutions/05_ranking.py, in lesson order; each block
names the section of the lesson that explains it.
"""

import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from movierec.preprocessing import GENRE_PAD, NUM_GENRES, feature_columns, pad_genres, release_year
from movierec.setup import quick_mode, training_slice

# --- from solutions/05_ranking.py, section: 5. The library ranking model: side features, biases, and a recipe
RANKING_FEATURES = (
    "user_id",
    "movie_title",
    "movie_genres",
    "bucketized_user_age",
    "user_gender",
    "user_occupation_text",
    "user_zip_code",
    "timestamp",
)
"""Raw features the ranking model may read; a feature dict may hold more keys (they are ignored)."""

AGE_BRACKETS = (1, 18, 25, 35, 45, 50, 56)
"""The values of ``bucketized_user_age`` in MovieLens 100k (1 means "under 18")."""


class FeatureEncoder(tf.keras.layers.Layer):
    """Raw ranking features -> one vector per (user, movie) pair, made of named blocks.

    Reads ``user_id`` and ``movie_title`` always; with ``side_features`` also the
    user's age bracket, gender, occupation and zip-code region, the movie's genres
    (ragged or padded with ``GENRE_PAD``), the words of its title and its release year;
    with ``timestamp`` a clipped z-score of the rating time. With ``history`` it adds
    the user's implicit-feedback summary: the normalised sum of learned vectors of the
    movies that user rated in ``train_features`` (Koren's SVD++ idea).

    Vocabularies and statistics come from ``train_features`` (users, occupations, zip
    regions, timestamps) and from the catalogue ``movie_features`` (titles, title
    words), so nothing is learned from test data. Unknown ids and values go to each
    lookup's out-of-vocabulary row. ``blocks`` lists ``(name, width)`` in output order.
    ``l2`` puts an L2 penalty of that strength on the user and title id embeddings and
    the history vectors (matrix factorisation's regulariser); 0 means none.
    """

    def __init__(
        self,
        train_features: dict,
        movie_features: dict,
        *,
        embedding_dim: int = 32,
        side_features: bool = True,
        history: bool = False,
        timestamp: bool = False,
        l2: float = 0.0,
        name: str = "feature_encoder",
    ) -> None:
        super().__init__(name=name)
        layers = tf.keras.layers
        self.side_features, self.use_history, self.use_timestamp = side_features, history, timestamp
        users = np.unique(np.asarray(train_features["user_id"]))
        titles = np.unique(np.asarray(movie_features["movie_title"]))
        # l2 > 0 adds l2 * (sum of squared entries) of the id tables (and history vectors) to the loss.
        penalty = tf.keras.regularizers.L2(l2) if l2 else None
        self.user_lookup = layers.StringLookup(vocabulary=users, name="user_lookup")
        self.title_lookup = layers.StringLookup(vocabulary=titles, name="title_lookup")
        self.user_embedding = layers.Embedding(
            self.user_lookup.vocabulary_size(), embedding_dim, embeddings_regularizer=penalty, name="user_embedding"
        )
        self.title_embedding = layers.Embedding(
            self.title_lookup.vocabulary_size(), embedding_dim, embeddings_regularizer=penalty, name="title_embedding"
        )
        self.blocks = [("user_id", embedding_dim), ("movie_title", embedding_dim)]
        if side_features:
            occupations = np.unique(np.asarray(train_features["user_occupation_text"]))
            regions = np.unique([code[:2] for code in np.asarray(train_features["user_zip_code"])])
            self.age_lookup = layers.IntegerLookup(vocabulary=np.array(AGE_BRACKETS, np.int64), name="age_lookup")
            self.age_embedding = layers.Embedding(len(AGE_BRACKETS) + 1, 8, name="age_embedding")
            self.gender_embedding = layers.Embedding(2, 4, name="gender_embedding")
            self.occupation_lookup = layers.StringLookup(vocabulary=occupations, name="occupation_lookup")
            self.occupation_embedding = layers.Embedding(
                self.occupation_lookup.vocabulary_size(), 8, name="occupation_embedding"
            )
            self.region_lookup = layers.StringLookup(vocabulary=regions, name="region_lookup")
            self.region_embedding = layers.Embedding(self.region_lookup.vocabulary_size(), 8, name="region_embedding")
            self.genre_embedding = layers.Embedding(NUM_GENRES + 1, 16, name="genre_embedding")
            # Title words and release year depend on the title only, so they are computed once
            # per catalogue title here and looked up by title index in call(): string ops on
            # every batch would cost more than the rest of the model. Row 0 (unknown title) is 0.
            vectorize = layers.TextVectorization(max_tokens=5000)
            vectorize.adapt(titles)
            words = vectorize(titles).numpy()
            self.title_word_ids = tf.constant(np.vstack([np.zeros((1, words.shape[1]), words.dtype), words]))
            self.word_embedding = layers.Embedding(vectorize.vocabulary_size(), 16, name="word_embedding")
            years = release_year(tf.constant(titles)).numpy()
            known = years > 0
            z_scores = np.where(known, (years - years[known].mean()) / years[known].std(), 0.0)
            self.title_years = tf.constant(np.concatenate([[0.0], z_scores]).astype(np.float32))
            self.blocks += [("age", 8), ("gender", 4), ("occupation", 8), ("zip_region", 8), ("genres", 16),
                            ("title_words", 16), ("release_year", 1)]
            if timestamp:
                seconds = np.asarray(train_features["timestamp"], dtype=np.float64)
                self.time_mean, self.time_std = float(seconds.mean()), float(seconds.std())
                self.blocks.append(("timestamp", 1))
        if history:
            rows = self.user_lookup(np.asarray(train_features["user_id"])).numpy()
            columns = self.title_lookup(np.asarray(train_features["movie_title"])).numpy()
            # N(u) as a ragged table: each (user, title) pair once (a title under two movie ids counts
            # once), sorted by user index; user u's titles are history_titles[splits[u]:splits[u + 1]].
            pairs = np.unique(np.stack([rows, columns], axis=1), axis=0)
            counts = np.bincount(pairs[:, 0], minlength=self.user_lookup.vocabulary_size())
            self.history_titles = tf.constant(pairs[:, 1], tf.int64)
            self.history_splits = tf.constant(np.concatenate([[0], np.cumsum(counts)]), tf.int64)
            # |N(u)|^(-1/2); the OOV user (index 0) has no titles, so its summary is all zeros.
            self.history_scale = tf.constant(1.0 / np.sqrt(np.maximum(counts, 1)), tf.float32)
            self.history_vectors = self.add_weight(
                name="history_vectors", shape=(self.title_lookup.vocabulary_size(), embedding_dim),
                initializer=tf.keras.initializers.RandomUniform(-0.05, 0.05),
                regularizer=penalty,
            )
            self.blocks.append(("history", embedding_dim))
        self.output_dim = sum(width for _, width in self.blocks)

    @staticmethod
    def _masked_mean(vectors: tf.Tensor, keep: tf.Tensor) -> tf.Tensor:
        weights = tf.cast(keep, vectors.dtype)[:, :, tf.newaxis]
        return tf.math.divide_no_nan(tf.reduce_sum(vectors * weights, axis=1), tf.reduce_sum(weights, axis=1))

    def history_matrix(self) -> np.ndarray:
        """The dense users x titles matrix of ``|N(u)|^(-1/2)`` weights (rows: user index, 0 = OOV).

        For checks and pictures only: ``call`` never builds it. The history block of a
        user is their row of this matrix times ``history_vectors``.
        """
        splits = self.history_splits.numpy()
        matrix = np.zeros((len(splits) - 1, self.title_lookup.vocabulary_size()), np.float32)
        owners = np.repeat(np.arange(len(splits) - 1), np.diff(splits))
        matrix[owners, self.history_titles.numpy()] = self.history_scale.numpy()[owners]
        return matrix

    def history_summaries(self, user_index: tf.Tensor) -> tf.Tensor:
        """``h_u = |N(u)|^(-1/2) * sum of history_vectors[j] for j in N(u)`` for a vector of user indices.

        Only the titles of the given users are gathered (a ragged lookup): the cost grows
        with the number of ratings of those users, not with the size of the catalogue.
        """
        rated = tf.RaggedTensor.from_row_splits(self.history_titles, self.history_splits, validate=False)
        lists = tf.gather(rated, user_index)
        sums = tf.math.unsorted_segment_sum(
            tf.gather(self.history_vectors, lists.flat_values), lists.value_rowids(), tf.shape(user_index)[0]
        )
        return sums * tf.gather(self.history_scale, user_index)[:, tf.newaxis]

    def block_slices(self) -> dict[str, slice]:
        """Which columns of the output each block occupies."""
        slices, start = {}, 0
        for name, width in self.blocks:
            slices[name] = slice(start, start + width)
            start += width
        return slices

    def call(self, features: dict) -> tf.Tensor:
        user = self.user_lookup(features["user_id"])
        title = self.title_lookup(features["movie_title"])
        parts = [self.user_embedding(user), self.title_embedding(title)]
        if self.side_features:
            parts.append(self.age_embedding(self.age_lookup(tf.cast(features["bucketized_user_age"], tf.int64))))
            parts.append(self.gender_embedding(tf.cast(features["user_gender"], tf.int32)))
            parts.append(self.occupation_embedding(self.occupation_lookup(features["user_occupation_text"])))
            parts.append(self.region_embedding(self.region_lookup(tf.strings.substr(features["user_zip_code"], 0, 2))))
            genres = pad_genres(features["movie_genres"])
            parts.append(self._masked_mean(self.genre_embedding(tf.maximum(genres, GENRE_PAD) + 1), genres >= 0))
            words = tf.gather(self.title_word_ids, title)
            parts.append(self._masked_mean(self.word_embedding(words), words != 0))
            parts.append(tf.gather(self.title_years, title)[:, tf.newaxis])
            if self.use_timestamp:
                seconds = (tf.cast(features["timestamp"], tf.float32) - self.time_mean) / self.time_std
                parts.append(tf.clip_by_value(seconds, -3.0, 3.0)[:, tf.newaxis])
        if self.use_history:
            # Each distinct user of the batch once (a ranking request is one user and many titles).
            batch_users, position = tf.unique(user)
            parts.append(tf.gather(self.history_summaries(batch_users), position))
        return tf.concat(parts, axis=1)


# --- from solutions/05_ranking.py, section: 5. The library ranking model: side features, biases, and a recipe
class MovieRanker(tf.keras.Model):
    """Rating model: a dict of raw features -> predicted stars, shape ``(batch,)``.

    ``rating = mean_rating + b_user + b_movie + f(x0)`` where ``x0`` is the
    :class:`FeatureEncoder` output and ``f`` is the concatenation of a deep branch (ReLU
    ``deep_units`` with ``dropout``) and, with ``cross``, one ``tfrs.layers.dcn.Cross``
    layer (a parallel deep & cross network), followed by ``Dense(1)``. ``make_head``
    replaces ``f``'s branches by any layer mapping ``x0`` to ``(batch, 1)``.

    Call it on a dict with the keys of ``RANKING_FEATURES`` that the encoder reads
    (``user_id``, ``movie_title``, ``movie_genres``, ``bucketized_user_age``,
    ``user_gender``, ``user_occupation_text``, ``user_zip_code``; ``timestamp`` if the
    encoder uses it); other keys are ignored. Unknown user ids or titles use the OOV
    embeddings and a zero bias. With ``training=False`` (inference, evaluation) the
    predictions are clipped to 1–5 stars.
    """

    def __init__(
        self,
        encoder: "FeatureEncoder",
        mean_rating: float,
        *,
        cross: bool = True,
        deep_units: tuple[int, ...] = (256, 64),
        dropout: float = 0.3,
        biases: bool = True,
        make_head: Callable[[], tf.keras.layers.Layer] | None = None,
    ) -> None:
        super().__init__(name="movie_ranker")
        layers = tf.keras.layers
        self.encoder = encoder
        self.mean_rating = float(mean_rating)
        self.input_dropout = layers.Dropout(dropout)
        self.head = make_head() if make_head is not None else None
        self.cross = tfrs.layers.dcn.Cross(kernel_initializer="glorot_uniform", name="cross") if cross else None
        self.deep = [layers.Dense(units, activation="relu", name=f"deep_{i}") for i, units in enumerate(deep_units)]
        self.deep_dropout = [layers.Dropout(dropout) for _ in deep_units]
        self.rating_layer = layers.Dense(1, name="rating")
        self.biases = biases
        if biases:
            # Biases start at 0, which is also what an unknown id keeps.
            self.user_bias = layers.Embedding(
                encoder.user_lookup.vocabulary_size(), 1, embeddings_initializer="zeros", name="user_bias"
            )
            self.title_bias = layers.Embedding(
                encoder.title_lookup.vocabulary_size(), 1, embeddings_initializer="zeros", name="title_bias"
            )

    def interaction(self, x0: tf.Tensor, training: bool = False) -> tf.Tensor:
        """``f(x0)``, shape ``(batch,)``: the part of the rating that combines the encoder's features.

        A method of its own so that lesson 07's servable can feed it encoder rows it
        computed ahead of time.
        """
        if self.head is not None:
            return self.head(x0, training=training)[:, 0]
        x = x0
        for layer, dropout in zip(self.deep, self.deep_dropout):
            x = dropout(layer(x), training=training)
        if self.cross is not None:
            x = tf.concat([self.cross(x0), x], axis=1)
        return self.rating_layer(x)[:, 0]

    def call(self, features: dict, training: bool = False, clip: bool = True) -> tf.Tensor:
        x0 = self.input_dropout(self.encoder(features), training=training)
        rating = self.mean_rating + self.interaction(x0, training=training)
        if self.biases:
            rating += self.user_bias(self.encoder.user_lookup(features["user_id"]))[:, 0]
            rating += self.title_bias(self.encoder.title_lookup(features["movie_title"]))[:, 0]
        if clip and not training:  # clip=False: the raw score, which is what ranking should sort by
            rating = tf.clip_by_value(rating, 1.0, 5.0)
        return rating


def refit_epochs(best_epoch: int) -> int:
    """The refit's epoch count: 10% more than the early-stopping run's best, for 10% more ratings (a rule of thumb)."""
    return max(1, round(1.1 * best_epoch))


def train_ranking_model(
    train: tf.data.Dataset | dict,
    movies: tf.data.Dataset | dict,
    *,
    epochs: int | None = None,
    seed: int = 42,
    batch_size: int = 4096,
    learning_rate: float = 0.01,
    validation_fraction: float = 0.1,
    patience: int = 2,
    max_epochs: int = 50,
    refit: bool = False,
    embedding_dim: int = 32,
    side_features: bool = True,
    history: bool = True,
    timestamp: bool = False,
    l2: float = 0.0,
    cross: bool = True,
    deep_units: tuple[int, ...] = (256, 64),
    dropout: float = 0.3,
    biases: bool = True,
    make_head: Callable[[], tf.keras.layers.Layer] | None = None,
    verbose: int = 0,
) -> MovieRanker:
    """Build and train the course's ranking model; returns the trained :class:`MovieRanker`.

    With the defaults this is the best model of lesson 05: side features, the user's
    implicit-feedback history, biases and a parallel deep & cross network, trained with
    Adam on mean squared error.

    Args:
        train: training ratings, a raw ``tf.data.Dataset`` (e.g. from ``random_split``)
            or a ``read_features`` dict; it must hold ``RANKING_FEATURES`` and
            ``user_rating``. Its rows should be in random order (the validation slice is
            its last rows).
        movies: the catalogue (``load_movies()`` or its ``read_features`` dict); it
            fixes the title vocabulary.
        epochs: ``None`` (default) chooses the number of epochs by early stopping:
            train on the first ``1 - validation_fraction`` of ``train`` (at most
            ``max_epochs``, stopping after ``patience`` epochs without a lower
            validation RMSE, keeping the best weights), then, with ``refit``, rebuild
            the model and train it on all of ``train`` for 1.1 times the best epoch
            count. An integer trains on all of ``train`` for exactly that many epochs,
            with no validation. In ``quick_mode()``, ``None`` means one epoch and
            no refit, and any setting trains on a slice of the rows, eagerly (``run_eagerly``:
            a few steps cost less than tracing the training graph).
        seed: seeds weights and shuffling, so a run repeats exactly.
        batch_size, learning_rate: Adam settings.
        embedding_dim, side_features, history, timestamp, l2: passed to :class:`FeatureEncoder`.
        cross, deep_units, dropout, biases, make_head: passed to :class:`MovieRanker`.
        verbose: Keras ``fit`` verbosity.

    Returns:
        The trained model, with extra attributes ``train_seconds`` (wall time of all
        training), ``curves`` (the per-epoch ``rmse``/``val_rmse`` of the early-stopping
        run, or ``None``), ``best_epoch`` (or ``None``) and ``epochs_trained``.
    """
    columns = training_slice(feature_columns(train, RANKING_FEATURES + ("user_rating",)))
    catalogue = feature_columns(movies, ("movie_title",))
    encoder_options = dict(
        embedding_dim=embedding_dim, side_features=side_features, history=history, timestamp=timestamp, l2=l2
    )
    model_options = dict(
        cross=cross, deep_units=tuple(deep_units), dropout=dropout, biases=biases, make_head=make_head
    )

    def inputs(part: dict) -> dict:
        return {key: part[key] for key in RANKING_FEATURES}

    def build(part: dict) -> MovieRanker:
        tf.keras.utils.set_random_seed(seed)
        encoder = FeatureEncoder(part, catalogue, **encoder_options)
        model = MovieRanker(encoder, float(np.mean(part["user_rating"].numpy())), **model_options)
        model.compile(
            optimizer=tf.keras.optimizers.Adam(learning_rate),
            loss="mse",
            metrics=[tf.keras.metrics.RootMeanSquaredError(name="rmse")],
            # Quick mode trains a few steps on a slice: eager steps cost less than tracing the graphs.
            run_eagerly=quick_mode(),
        )
        # Every weight and the optimiser's moments now, on one row, so fit's traced step does not create them and
        # get traced twice (lesson 04's trainer does the same); the initial values, and the training, are unchanged.
        model(inputs({key: value[:1] for key, value in part.items()}))
        model.optimizer.build(model.trainable_variables)
        return model

    started = time.perf_counter()
    curves, best_epoch = None, None
    if epochs is None:
        if quick_mode():
            max_epochs, refit = 1, False
        n = int(columns["user_rating"].shape[0])
        n_fit = n - int(round(n * validation_fraction))
        fit = {key: value[:n_fit] for key, value in columns.items()}
        val = {key: value[n_fit:] for key, value in columns.items()}
        model = build(fit)
        stop = tf.keras.callbacks.EarlyStopping(monitor="val_rmse", patience=patience, restore_best_weights=True)
        result = model.fit(
            inputs(fit), fit["user_rating"], batch_size=batch_size, epochs=max_epochs,
            validation_data=(inputs(val), val["user_rating"]), validation_batch_size=8192,
            callbacks=[stop], verbose=verbose,
        )
        curves = result.history
        best_epoch = int(np.argmin(curves["val_rmse"])) + 1
        model.epochs_trained = best_epoch
        epochs = refit_epochs(best_epoch) if refit else None
    if epochs is not None:
        model = build(columns)
        model.fit(inputs(columns), columns["user_rating"], batch_size=batch_size, epochs=epochs, verbose=verbose)
        model.epochs_trained = epochs
    model.train_seconds = time.perf_counter() - started
    model.curves = curves
    model.best_epoch = best_epoch
    return model
