# DO NOT EDIT — generated from solutions/03_preprocessing.py by `python -m grader build`: edit the lesson instead.
"""Building blocks from lesson 03_preprocessing: Lesson 03 — Preprocessing: from raw features to vectors.

The cells tagged ``export`` in solutions/03_preprocessing.py, in lesson order; each block
names the section of the lesson that explains it.
"""

import numpy as np
import tensorflow as tf

# --- from solutions/03_preprocessing.py, section: 1. Why raw features are unusable as they are
QUERY_FEATURES = ("user_id", "timestamp", "raw_user_age", "user_gender", "user_occupation_text")
"""Raw features the query tower reads: who the user is and when the query happens."""

CANDIDATE_FEATURES = ("movie_id", "movie_title", "movie_genres")
"""Raw features the candidate tower reads: the movie's identity, title and genres."""

NUM_GENRES = 21
"""Size of the genre label set in the TFDS MovieLens data (`ClassLabel` with 21 names)."""

GENRE_PAD = -1
"""Value used to pad genre lists to a rectangle; no real genre has a negative label."""


def pad_genres(genres: tf.Tensor | tf.RaggedTensor) -> tf.Tensor:
    """Return genre labels as a dense ``(batch, width)`` int tensor padded with ``GENRE_PAD``.

    Batches made with ``Dataset.ragged_batch`` hold genres as a ``tf.RaggedTensor``; a
    dense tensor is returned as it is, so both batch styles work downstream.
    """
    if isinstance(genres, tf.RaggedTensor):
        return genres.to_tensor(default_value=GENRE_PAD)
    return tf.convert_to_tensor(genres)


def read_features(dataset: tf.data.Dataset, keys: tuple[str, ...] | list[str] | None = None) -> dict[str, tf.Tensor]:
    """Read a dataset of raw MovieLens feature dicts into one dict of tensors.

    Args:
        dataset: unbatched elements, e.g. the output of ``random_split`` or ``load_movies()``.
        keys: features to keep (default: all of them). Reading fewer is faster.

    Returns:
        ``{name: tensor}`` with one row per element, in the dataset's order. Scalar
        features become 1-D tensors; ``movie_genres`` becomes a dense 2-D tensor padded
        with ``GENRE_PAD``. Feed slices of it to the towers, or wrap it with
        ``tf.data.Dataset.from_tensor_slices`` for training.

    Raises:
        ValueError: if the elements are not dicts, a key is missing, or the dataset is empty.
    """
    if not isinstance(dataset.element_spec, dict):
        raise ValueError("read_features expects a dataset whose elements are dicts of features")
    keys = tuple(dataset.element_spec) if keys is None else tuple(keys)
    missing = [key for key in keys if key not in dataset.element_spec]
    if missing:
        raise ValueError(f"features {missing} are not in the dataset; it has {sorted(dataset.element_spec)}")
    selected = dataset.map(lambda element: {key: element[key] for key in keys})
    spec = selected.element_spec
    lists = {key for key in keys if spec[key].shape.rank}  # variable-length features: the genres
    padding = {
        key: tf.constant(GENRE_PAD, spec[key].dtype)
        if key in lists and spec[key].dtype.is_integer and not spec[key].dtype.is_unsigned
        else tf.zeros([], spec[key].dtype)
        for key in keys
    }
    chunks: dict[str, list] = {key: [] for key in keys}
    for batch in selected.padded_batch(20_000, padding_values=padding).prefetch(tf.data.AUTOTUNE):
        for key in keys:
            chunks[key].append(batch[key])
    if not chunks[keys[0]]:
        raise ValueError("the dataset is empty")
    for key in lists:  # each batch is as wide as its own longest list: widen all to the longest overall
        width = max(int(part.shape[1]) for part in chunks[key])
        chunks[key] = [tf.pad(part, [[0, 0], [0, width - int(part.shape[1])]], constant_values=padding[key])
                       for part in chunks[key]]
    return {key: tf.concat(parts, axis=0) for key, parts in chunks.items()}


def feature_columns(data: tf.data.Dataset | dict, keys: tuple[str, ...]) -> dict[str, tf.Tensor]:
    """The columns ``keys`` as tensors, from a raw dataset or from a dict ``read_features`` made.

    Every later builder and trainer takes either form through this one adapter, so a caller
    can read a split once and pass the dict around instead of reading the dataset again.
    """
    if isinstance(data, tf.data.Dataset):
        return read_features(data, keys)
    missing = [key for key in keys if key not in data]
    if missing:
        raise ValueError(f"features {missing} are missing; got {sorted(data)}")
    return {key: pad_genres(data[key]) if key == "movie_genres" else tf.convert_to_tensor(data[key]) for key in keys}


# --- from solutions/03_preprocessing.py, section: 4. Text: movie titles
def release_year(titles: tf.Tensor) -> tf.Tensor:
    """Release year from MovieLens titles such as ``b"Heat (1995)"`` as float32; 0 when absent.

    Works on a string tensor of any shape, inside or outside ``tf.function``.
    """
    year = tf.strings.regex_replace(titles, r"^.*\((\d{4})\)\s*$", r"\1")
    found = tf.strings.regex_full_match(year, r"\d{4}")
    return tf.where(found, tf.strings.to_number(tf.where(found, year, "0"), out_type=tf.float32), 0.0)


# --- from solutions/03_preprocessing.py, section: The library towers
SECONDS_PER_DAY = 86_400
SECONDS_PER_WEEK = 7 * SECONDS_PER_DAY
TIME_FEATURES = ("none", "clock", "session")
"""What a query tower may know about the time of a query (see :class:`QueryTower`)."""


class QueryTower(tf.keras.Model):
    """Query tower: a batch of raw query features -> one vector per example.

    With ``use_features=True`` it reads ``QUERY_FEATURES``: the user id (embedding), the
    timestamp as ``time_features`` says (``"clock"``: sin/cos of the hour of the day and
    of the day of the week; ``"none"``: not used; ``"session"``: the clock plus
    ``time_buckets`` quantile buckets with their own embedding and a z-score, a
    counter-example that leaks the rating session on a random split), age (z-score), gender (0/1) and
    occupation (embedding); the parts are concatenated, passed through optional ReLU
    ``hidden_units`` and projected to ``embedding_dim``. With ``use_features=False`` it
    reads only ``user_id`` and returns the user's embedding (the id-only baseline).
    Unknown user ids and occupations use the lookup's out-of-vocabulary row.

    Build it with :func:`build_query_tower`, which computes every statistic from the
    training split.
    """

    def __init__(
        self,
        user_ids: np.ndarray,
        timestamps: np.ndarray | None = None,
        ages: np.ndarray | None = None,
        occupations: np.ndarray | None = None,
        *,
        embedding_dim: int = 32,
        use_features: bool = True,
        time_buckets: int = 1000,
        time_features: str = "clock",
        hidden_units: tuple[int, ...] = (),
        l2: float = 0.0,
        name: str = "query_tower",
    ) -> None:
        super().__init__(name=name)
        if time_features not in TIME_FEATURES:
            raise ValueError(f"time_features must be one of {TIME_FEATURES}, got {time_features!r}")
        self.embedding_dim = embedding_dim
        self.use_features = use_features
        self.time_features = time_features
        layers = tf.keras.layers
        regularizer = tf.keras.regularizers.l2(l2) if l2 else None
        self.user_lookup = layers.StringLookup(vocabulary=np.unique(user_ids), mask_token=None, name="user_lookup")
        self.user_embedding = layers.Embedding(
            self.user_lookup.vocabulary_size(), embedding_dim, embeddings_regularizer=regularizer, name="user_vectors"
        )
        if not use_features:
            return
        if time_features == "session":
            seconds = np.asarray(timestamps, dtype=np.float64)
            self.time_zscore = layers.Normalization(
                axis=None, mean=seconds.mean(), variance=seconds.var(), name="time_z"
            )
            boundaries = np.unique(np.quantile(seconds, np.linspace(0.0, 1.0, time_buckets + 1)[1:-1]))
            self.time_buckets = layers.Discretization(bin_boundaries=boundaries.tolist(), name="time_buckets")
            self.time_embedding = layers.Embedding(len(boundaries) + 1, embedding_dim, name="time_embedding")
        ages = np.asarray(ages, dtype=np.float64)
        self.age_zscore = layers.Normalization(axis=None, mean=ages.mean(), variance=ages.var(), name="age_z")
        self.occupation_lookup = layers.StringLookup(
            vocabulary=np.unique(occupations), mask_token=None, name="occupation_lookup"
        )
        self.occupation_embedding = layers.Embedding(
            self.occupation_lookup.vocabulary_size(), 8, name="occupation_embedding"
        )
        self.hidden = [layers.Dense(n, activation="relu", name=f"hidden_{i}") for i, n in enumerate(hidden_units)]
        self.projection = layers.Dense(embedding_dim, name="projection")

    @staticmethod
    def _clock(timestamps: tf.Tensor) -> tf.Tensor:
        """sin/cos of the time of day and of the day of the week (UTC), shape ``(batch, 4)``."""
        seconds = tf.cast(timestamps, tf.float64)
        day = 2.0 * np.pi * tf.math.floormod(seconds, SECONDS_PER_DAY) / SECONDS_PER_DAY
        week = 2.0 * np.pi * tf.math.floormod(seconds, SECONDS_PER_WEEK) / SECONDS_PER_WEEK
        return tf.cast(tf.stack([tf.sin(day), tf.cos(day), tf.sin(week), tf.cos(week)], axis=-1), tf.float32)

    def call(self, features: dict) -> tf.Tensor:
        user = self.user_embedding(self.user_lookup(features["user_id"]))
        if not self.use_features:
            return user
        parts = [user]
        if self.time_features == "session":
            seconds = tf.cast(features["timestamp"], tf.float64)
            parts.append(self.time_embedding(self.time_buckets(seconds)))
            parts.append(tf.reshape(tf.cast(self.time_zscore(seconds), tf.float32), (-1, 1)))
        if self.time_features in ("clock", "session"):
            parts.append(self._clock(features["timestamp"]))
        parts += [
            tf.reshape(tf.cast(self.age_zscore(tf.cast(features["raw_user_age"], tf.float64)), tf.float32), (-1, 1)),
            tf.reshape(tf.cast(features["user_gender"], tf.float32), (-1, 1)),
            self.occupation_embedding(self.occupation_lookup(features["user_occupation_text"])),
        ]
        x = tf.concat(parts, axis=-1)
        for layer in self.hidden:
            x = layer(x)
        return self.projection(x)


class CandidateTower(tf.keras.Model):
    """Candidate tower: a batch of raw movie features -> one vector per movie.

    With ``use_features=True`` it reads ``CANDIDATE_FEATURES``: the movie id (embedding),
    the title (``TextVectorization`` + word embeddings averaged over real words only),
    the release year parsed from the title (five-year buckets with an embedding) and the
    genres (embeddings averaged over real genres; ``movie_genres`` may be ragged or
    padded with ``GENRE_PAD``, and an empty list gives a zero vector). The parts are
    concatenated, passed through optional ReLU ``hidden_units`` and projected to
    ``embedding_dim``. With ``use_features=False`` it reads only ``movie_id`` and returns
    the movie's embedding.

    Build it with :func:`build_candidate_tower`.
    """

    def __init__(
        self,
        movie_ids: np.ndarray,
        titles: np.ndarray | None = None,
        *,
        embedding_dim: int = 32,
        use_features: bool = True,
        title_dim: int = 32,
        genre_dim: int = 8,
        hidden_units: tuple[int, ...] = (),
        l2: float = 0.0,
        name: str = "candidate_tower",
    ) -> None:
        super().__init__(name=name)
        self.embedding_dim = embedding_dim
        self.use_features = use_features
        layers = tf.keras.layers
        regularizer = tf.keras.regularizers.l2(l2) if l2 else None
        self.movie_lookup = layers.StringLookup(vocabulary=np.unique(movie_ids), mask_token=None, name="movie_lookup")
        self.movie_embedding = layers.Embedding(
            self.movie_lookup.vocabulary_size(), embedding_dim, embeddings_regularizer=regularizer, name="movie_vectors"
        )
        if not use_features:
            return
        self.title_tokens = layers.TextVectorization(name="title_tokens")
        self.title_tokens.adapt(np.asarray(titles))
        self.title_embedding = layers.Embedding(self.title_tokens.vocabulary_size(), title_dim, name="title_embedding")
        self.genre_embedding = layers.Embedding(NUM_GENRES + 1, genre_dim, name="genre_embedding")
        five_years = [float(year) for year in range(1930, 2000, 5)]  # 14 boundaries -> 15 buckets
        self.year_buckets = layers.Discretization(bin_boundaries=five_years, name="year_buckets")
        self.year_embedding = layers.Embedding(len(five_years) + 1, 8, name="year_embedding")
        self.hidden = [layers.Dense(n, activation="relu", name=f"hidden_{i}") for i, n in enumerate(hidden_units)]
        self.projection = layers.Dense(embedding_dim, name="projection")

    @staticmethod
    def _mean_over(vectors: tf.Tensor, keep: tf.Tensor) -> tf.Tensor:
        weights = tf.cast(keep, vectors.dtype)[:, :, tf.newaxis]
        return tf.math.divide_no_nan(tf.reduce_sum(vectors * weights, axis=1), tf.reduce_sum(weights, axis=1))

    def call(self, features: dict) -> tf.Tensor:
        movie = self.movie_embedding(self.movie_lookup(features["movie_id"]))
        if not self.use_features:
            return movie
        tokens = self.title_tokens(features["movie_title"])
        genres = pad_genres(features["movie_genres"])
        parts = [
            movie,
            self._mean_over(self.title_embedding(tokens), tokens != 0),
            self._mean_over(self.genre_embedding(tf.maximum(genres, -1) + 1), genres >= 0),
            self.year_embedding(self.year_buckets(release_year(features["movie_title"]))),
        ]
        x = tf.concat(parts, axis=-1)
        for layer in self.hidden:
            x = layer(x)
        return self.projection(x)


def _columns(data: tf.data.Dataset | dict, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """NumPy copies of :func:`feature_columns` (the tower builders compute statistics with NumPy)."""
    return {key: np.asarray(value) for key, value in feature_columns(data, keys).items()}


def build_query_tower(
    train: tf.data.Dataset | dict,
    *,
    embedding_dim: int = 32,
    use_features: bool = True,
    time_buckets: int = 1000,
    time_features: str = "clock",
    hidden_units: tuple[int, ...] = (),
    l2: float = 0.0,
) -> QueryTower:
    """Build a :class:`QueryTower` whose vocabularies and statistics come from ``train`` only.

    Args:
        train: the training split, as a raw ``tf.data.Dataset`` of feature dicts or as
            the dict returned by ``read_features`` (faster when you already have it).
        embedding_dim: size of the output vector (and of the user and time embeddings).
        use_features: ``False`` for the id-only tower (user embedding only).
        time_buckets: number of equal-frequency timestamp buckets (``time_features="session"`` only).
        time_features: ``"clock"`` (default), ``"none"`` or ``"session"`` (the leaky
            counter-example); see :class:`QueryTower`.
        hidden_units: sizes of optional ReLU layers before the output projection.
        l2: L2 penalty on the user embedding table (0 disables it).

    Returns:
        An unbuilt ``QueryTower``; call it on a batch dict to get ``(batch, embedding_dim)``.
    """
    keys = ("user_id", "timestamp", "raw_user_age", "user_occupation_text") if use_features else ("user_id",)
    columns = _columns(train, keys)
    return QueryTower(
        columns["user_id"],
        columns.get("timestamp"),
        columns.get("raw_user_age"),
        columns.get("user_occupation_text"),
        embedding_dim=embedding_dim,
        use_features=use_features,
        time_buckets=time_buckets,
        time_features=time_features,
        hidden_units=tuple(hidden_units),
        l2=l2,
    )


def build_candidate_tower(
    movies: tf.data.Dataset | dict,
    *,
    embedding_dim: int = 32,
    use_features: bool = True,
    hidden_units: tuple[int, ...] = (),
    l2: float = 0.0,
) -> CandidateTower:
    """Build a :class:`CandidateTower` from the movie catalogue (``load_movies()`` or its ``read_features`` dict).

    The movie-id vocabulary and the title vocabulary come from the catalogue, which is
    known before any rating and so leaks nothing. ``embedding_dim`` must match the query
    tower's. ``l2`` penalises the movie embedding table.
    """
    columns = _columns(movies, ("movie_id", "movie_title"))
    return CandidateTower(
        columns["movie_id"],
        columns["movie_title"],
        embedding_dim=embedding_dim,
        use_features=use_features,
        hidden_units=tuple(hidden_units),
        l2=l2,
    )
