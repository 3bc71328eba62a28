# %% [markdown]
# # Lesson 03 — Preprocessing: from raw features to vectors
#
# A rating in MovieLens is a small bundle of facts: a user id such as `b'138'`, a Unix
# timestamp such as `879024327`, an age, an occupation, a zip code, a movie title and a
# list of genre numbers. A neural network understands none of these directly. It wants
# fixed-size vectors of floating-point numbers on a sensible scale. This lesson builds
# the bridge, one kind of feature at a time, with Keras preprocessing layers, and ends
# with the two **towers** that the retrieval model of lesson 04 trains: one turns a
# query (a user at a moment in time) into a vector, the other turns a movie into a
# vector of the same size.
#
# In this lesson you will:
#
# * see why raw features cannot go into a model as they are;
# * scale numbers with `Normalization` (z-score), cut them into buckets with
#   `Discretization`, and use cyclic and log transforms where they fit;
# * turn ids and categories into vectors with `StringLookup` / `IntegerLookup` and
#   `Embedding`, handle ids the vocabulary has never seen, and use `Hashing` when a
#   vocabulary is too large to list;
# * embed movie titles with `TextVectorization`, and average word vectors with a
#   **mask** so that padding does not count;
# * encode the genres of a movie, a feature with several values, as a multi-hot vector
#   or an averaged embedding;
# * see how adapting a layer on the wrong data leaks information from the test set;
# * compose a query tower and a candidate tower as Keras models that take the raw
#   feature dictionary and return one vector.
#
# The cells tagged `export` become the library module `movierec.preprocessing`, which
# lessons 04 to 07 import. The eight exercises are smaller, separate tasks; each has a
# test cell right below it.

# %% tags=["setup"]
from movierec.setup import setup_lesson

setup_lesson()

# %%
import datetime

import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from movierec.dataset import load_movies, load_ratings, random_split, temporal_cutoff, to_numpy
from movierec.report import record

# %% [markdown]
# ## 1. Why raw features are unusable as they are
#
# Take the first training rating of the course's random split (lesson 02) and look at
# each value with a model's eyes.

# %%
ratings = load_ratings()
movies = load_movies()
train, validation, test = random_split(ratings)
example = next(iter(train.take(1)))
for name in ("user_id", "timestamp", "raw_user_age", "user_gender", "user_occupation_text",
             "user_zip_code", "movie_id", "movie_title", "movie_genres"):
    print(f"{name:<22} {example[name].dtype.name:<7} {example[name].numpy()}")

# %% [markdown]
# Four problems stand out:
#
# 1. **Strings are not numbers.** `user_id`, `movie_id`, the occupation and the zip
#    code are labels. Their byte values mean nothing: user `b'138'` is not "close to"
#    user `b'139'`. Each label must first become an integer index, and that index must
#    become a learned vector (an *embedding*).
# 2. **Scale.** The timestamp is close to $9 \times 10^8$. Multiplied by a weight
#    initialised around $\pm 0.1$, it produces activations in the tens of millions,
#    saturates any non-linearity and makes gradients explode. Numbers must be brought
#    to a scale near 1.
# 3. **Variable length.** A title is a sequence of words of any length, and a movie
#    has one to six genres. A batch of tensors must be rectangular, and the model must
#    end up with one fixed-size vector per example whatever the length.
# 4. **Meaningful structure hidden in the number.** The timestamp also encodes the hour
#    of the day and the day of the week, which repeat in cycles; the title also encodes
#    the release year. A model finds such structure much more easily when we spell it
#    out.
#
# The tools are **Keras preprocessing layers**. Some are stateless (`Hashing`), most
# have a state — a vocabulary, a mean and variance, bucket boundaries — that is
# computed from data by calling `layer.adapt(data)` once, before training. Because they
# are ordinary layers, they live *inside* the model: the exported model takes raw
# strings and numbers, and the same code transforms the data at training time and at
# serving time. That removes a classic bug, **training/serving skew**, where the
# service preprocesses a feature slightly differently from the training pipeline.
#
# A small demonstration of the scale problem: one `Dense` unit with its usual random
# initialisation, applied to raw timestamps and to the same timestamps in days since
# the first rating.

# %%
first_timestamps = np.array([[874_724_710.0], [879_024_327.0], [893_286_638.0]])
unit = tf.keras.layers.Dense(1, kernel_initializer=tf.keras.initializers.RandomUniform(-0.1, 0.1, seed=0))
print("raw seconds ->", unit(first_timestamps).numpy().ravel())
print("days        ->", unit((first_timestamps - first_timestamps[0]) / 86_400).numpy().ravel())

# %% [markdown]
# We need the training split in memory to adapt layers on it. `read_features` (exported)
# reads a dataset of raw feature dictionaries in large batches into one dictionary of
# tensors. It uses `ragged_batch`, because `movie_genres` varies in length, and then
# pads the genre lists to a rectangle with `-1`, a value no genre uses. The constants
# name the features that each tower reads.

# %% tags=["export"]
import numpy as np
import tensorflow as tf

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
    chunks: dict[str, list] = {key: [] for key in keys}
    for batch in selected.ragged_batch(20_000).prefetch(tf.data.AUTOTUNE):
        for key in keys:
            chunks[key].append(batch[key])
    if not chunks[keys[0]]:
        raise ValueError("the dataset is empty")
    columns = {key: tf.concat(parts, axis=0) for key, parts in chunks.items()}
    return {key: pad_genres(value) for key, value in columns.items()}


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


# %%
train_features = read_features(train)
movie_features = read_features(movies)
print({name: (value.dtype.name, tuple(value.shape)) for name, value in train_features.items()})
print("movie genres of the first three movies:\n", movie_features["movie_genres"][:3].numpy())

# %% [markdown]
# ## 2. Numerical features
#
# ### 2.1 Standardisation with `Normalization`
#
# The **z-score** of a value $x$ subtracts the mean $\mu$ and divides by the standard
# deviation $\sigma$ of the feature:
#
# $$
# z = \frac{x - \mu}{\sigma}.
# $$
#
# After the transform the feature has mean 0 and standard deviation 1 *on the data
# $\mu$ and $\sigma$ were computed on*. Values keep their order and relative distances,
# so nothing is lost; the feature is merely put on the scale that weight initialisers
# and optimisers assume. `tf.keras.layers.Normalization` stores $\mu$ and $\sigma^2$;
# `adapt` computes them. With `axis=None` it treats every input value as one sample of
# a single scalar feature, which is what a batch of timestamps of shape `(batch,)` is.
#
# ### Exercise 1 (2 points): z-score the timestamps
#
# Write `fit_timestamp_normalizer(timestamps)` that returns a `Normalization` layer
# adapted on the given timestamps, so that it maps a batch of timestamps of shape
# `(n,)` to z-scores of the same shape.
#
# **Hint:** `tf.keras.layers.Normalization(axis=None)`, then `.adapt(...)`. Timestamps
# are `int64`; converting them to `float64` with NumPy before adapting is harmless and
# keeps the arithmetic exact.

# %% nbgrader={"grade": false, "grade_id": "fit_timestamp_normalizer", "locked": false, "schema_version": 3, "solution": true}
def fit_timestamp_normalizer(timestamps: np.ndarray) -> tf.keras.layers.Normalization:
    """Return a ``Normalization`` layer adapted on ``timestamps`` (z-score of a scalar).

    Args:
        timestamps: 1-D array of Unix timestamps (seconds), e.g. the training split's.

    Returns:
        A layer that maps a tensor of timestamps of shape ``(n,)`` to their z-scores,
        shape ``(n,)``: mean 0 and standard deviation 1 over ``timestamps`` itself.
    """
    ### BEGIN SOLUTION
    layer = tf.keras.layers.Normalization(axis=None)
    layer.adapt(np.asarray(timestamps, dtype=np.float64))
    return layer
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_fit_timestamp_normalizer", "locked": true, "points": 2, "schema_version": 3, "solution": false}
_train_ts = train_features["timestamp"].numpy()
_layer = fit_timestamp_normalizer(_train_ts)
assert isinstance(_layer, tf.keras.layers.Normalization), f"return a tf.keras.layers.Normalization, got {type(_layer).__name__}"
_z = np.asarray(_layer(_train_ts.astype(np.float64)), dtype=np.float64)
assert _z.shape == _train_ts.shape, f"a batch of shape {_train_ts.shape} should give z-scores of the same shape, got {_z.shape} (use axis=None)"
assert abs(_z.mean()) < 1e-3, f"on the training split the z-scores should have mean about 0, got {_z.mean():.4f}"
assert abs(_z.std() - 1) < 1e-3, f"on the training split the z-scores should have standard deviation about 1, got {_z.std():.4f}"
print("fit_timestamp_normalizer: visible tests passed")
### BEGIN HIDDEN TESTS
_order = np.argsort(_train_ts[:50])
assert np.all(np.diff(_z[:50][_order]) >= 0), "the z-score must keep the order of the timestamps"
_small = np.array([10, 20, 30, 40], dtype=np.int64)
_zs = np.asarray(fit_timestamp_normalizer(_small)(_small.astype(np.float64)))
assert np.allclose(_zs, (_small - 25) / np.std(_small), atol=1e-4), f"on [10, 20, 30, 40] expected {(_small - 25) / np.std(_small)}, got {_zs}"
### END HIDDEN TESTS

# %% [markdown]
# Fitted on the training split, the layer gives *almost* mean 0 and standard deviation 1
# on the test split too — almost, because the test ratings are a different sample. That
# small gap is expected and harmless; section 6 shows when it is not.

# %%
try:
    normalizer = fit_timestamp_normalizer(train_features["timestamp"].numpy())
except NotImplementedError:  # one unsolved exercise must not stop the rest of the lesson
    normalizer = None
    print("fit_timestamp_normalizer() is exercise 1: once it is solved, the test split's z-scores appear here")
if normalizer is not None:
    test_timestamps = to_numpy(test, ("timestamp",))["timestamp"]
    z_test = normalizer(test_timestamps.astype(np.float64)).numpy()
    print(f"training mean {float(normalizer.mean.numpy().squeeze()):,.0f} s, "
          f"std {float(np.sqrt(normalizer.variance.numpy().squeeze())):,.0f} s")
    print(f"z-scores on the test split: mean {z_test.mean():+.4f}, std {z_test.std():.4f}")

# %% [markdown]
# ### 2.2 Buckets with `Discretization`
#
# A z-score lets a model use time *linearly*: "later means a bit more of something".
# Tastes do not move linearly in time, though. Movies come out, get watched in a burst
# and fade; MovieLens itself changed which movies it showed its users. **Bucketing**
# cuts the time axis into intervals and gives each interval its own learned embedding,
# so the model can learn any shape of effect, one bucket at a time.
#
# Bucket boundaries are best placed at **quantiles** of the training data, so that
# every bucket holds about the same number of ratings and every bucket's embedding gets
# enough examples to learn from. The layer is `tf.keras.layers.Discretization`: with
# `bin_boundaries=[b1, ..., bk]` it maps a value $x$ to the index of the interval it
# falls in (`0` for $x < b_1$, `k` for $x \ge b_k$); with `num_bins=n` its `adapt`
# estimates the boundaries itself.
#
# **Pitfall:** `adapt` only *approximates* the quantiles, with a sketch whose accuracy
# is set by `epsilon` (default `0.01`). MovieLens timestamps arrive in bursts — a user
# rates dozens of movies within minutes, and the training split has only about 44,000
# distinct timestamps for 80,000 ratings — and the default sketch handles that poorly:

# %%
train_timestamps = train_features["timestamp"].numpy()
print(f"{len(np.unique(train_timestamps)):,} distinct timestamps among {len(train_timestamps):,} training ratings")
record("preprocessing.distinct_train_timestamps", len(np.unique(train_timestamps)))
default_buckets = tf.keras.layers.Discretization(num_bins=10)
default_buckets.adapt(train_timestamps.astype(np.float64))
share = np.bincount(default_buckets(train_timestamps.astype(np.float64)).numpy(), minlength=10) / len(train_timestamps)
print("share of ratings per bucket with adapt's default epsilon:", np.round(share, 3))
record("preprocessing.default_discretization_max_share", float(share.max()))

# %% [markdown]
# With ten buckets each should hold 10% of the ratings; the largest holds about twice
# that. Always look at the bucket counts after adapting.
#
# ### Exercise 2 (2 points): equal-frequency time buckets
#
# Write `fit_time_buckets(timestamps, num_buckets)` returning a `Discretization` layer
# whose `num_buckets` buckets each hold close to $1/\text{num\_buckets}$ of the given
# timestamps (between half and one and a half times that share).
#
# **Hint:** either compute the `num_buckets - 1` inner quantiles yourself with
# `np.quantile(timestamps, np.linspace(0, 1, num_buckets + 1)[1:-1])` and pass them as
# `bin_boundaries`, or adapt with a much smaller `epsilon`. Pass timestamps as
# `float64`.

# %% nbgrader={"grade": false, "grade_id": "fit_time_buckets", "locked": false, "schema_version": 3, "solution": true}
def fit_time_buckets(timestamps: np.ndarray, num_buckets: int) -> tf.keras.layers.Discretization:
    """Return a ``Discretization`` layer with ``num_buckets`` equal-frequency buckets.

    Args:
        timestamps: 1-D array of Unix timestamps (the training split's).
        num_buckets: number of buckets, at least 2.

    Returns:
        A layer mapping ``float64`` timestamps of shape ``(n,)`` to bucket ids of shape
        ``(n,)`` in ``0 … num_buckets - 1``, non-decreasing in time, each bucket holding
        roughly the same number of the given timestamps.
    """
    ### BEGIN SOLUTION
    values = np.asarray(timestamps, dtype=np.float64)
    boundaries = np.quantile(values, np.linspace(0.0, 1.0, num_buckets + 1)[1:-1])
    return tf.keras.layers.Discretization(bin_boundaries=boundaries.tolist())
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_fit_time_buckets", "locked": true, "points": 2, "schema_version": 3, "solution": false}
_ts = train_features["timestamp"].numpy().astype(np.float64)
_layer = fit_time_buckets(_ts, 10)
assert isinstance(_layer, tf.keras.layers.Discretization), f"return a tf.keras.layers.Discretization, got {type(_layer).__name__}"
_ids = np.asarray(_layer(_ts))
assert _ids.shape == _ts.shape, f"expected bucket ids of shape {_ts.shape}, got {_ids.shape}"
assert _ids.min() >= 0 and _ids.max() <= 9, f"10 buckets should give ids 0..9, got {_ids.min()}..{_ids.max()}"
_share = np.bincount(_ids, minlength=10) / len(_ids)
assert _share.min() >= 0.05 and _share.max() <= 0.15, f"each of 10 buckets should hold 5%..15% of the ratings, got shares {np.round(_share, 3)}"
_sorted = np.asarray(_layer(np.sort(_ts)[::997]))
assert np.all(np.diff(_sorted) >= 0), "bucket ids must not decrease when time increases"
print("fit_time_buckets: visible tests passed")
### BEGIN HIDDEN TESTS
_layer = fit_time_buckets(_ts, 100)
_share = np.bincount(np.asarray(_layer(_ts)), minlength=100) / len(_ts)
assert len(_share) == 100 and _share.min() >= 0.005 and _share.max() <= 0.015, f"with 100 buckets each should hold 0.5%..1.5%, got {_share.min():.4f}..{_share.max():.4f}"
_layer = fit_time_buckets(np.arange(1000.0), 4)
assert np.asarray(_layer(np.array([0.0, 300.0, 600.0, 999.0]))).tolist() == [0, 1, 2, 3], "on 0..999 with 4 buckets, 0/300/600/999 should fall in buckets 0/1/2/3"
### END HIDDEN TESTS

# %% [markdown]
# ### 2.3 Cyclic and log transforms
#
# Some numbers live on a **circle**. 23:59 and 00:01 are two minutes apart, yet as
# "hours since midnight" they are 23.97 and 0.02, as far apart as the feature allows.
# The fix is to put the value on the unit circle: with $h$ the hour of the day,
#
# $$
# \left(\sin \frac{2\pi h}{24},\ \cos \frac{2\pi h}{24}\right)
# $$
#
# is a point whose distance to the next hour's point is the same all around the clock.
# The day of the week works the same way with a period of 7 days. (MovieLens
# timestamps are in UTC, and its users were mostly in the United States, so "hour"
# here is hour of the day in UTC, shifted from local time by a few hours — still
# periodic, which is all the transform needs.)
#
# ### Exercise 3 (1 point): hour of the day on the unit circle
#
# Write `hour_of_day_features(timestamps)` returning, for each Unix timestamp, the pair
# `[sin, cos]` of its time of day as an angle.
#
# **Hint:** the seconds since midnight (UTC) are `timestamps % 86_400`; the angle is
# $2\pi$ times that divided by 86,400.

# %% nbgrader={"grade": false, "grade_id": "hour_of_day_features", "locked": false, "schema_version": 3, "solution": true}
def hour_of_day_features(timestamps: np.ndarray) -> np.ndarray:
    """Encode the time of day (UTC) of each timestamp as a point on the unit circle.

    Args:
        timestamps: 1-D array of Unix timestamps (seconds), shape ``(n,)``.

    Returns:
        Float array of shape ``(n, 2)``: column 0 is ``sin(angle)``, column 1 is
        ``cos(angle)``, where ``angle = 2π · (seconds since midnight) / 86400``. Midnight
        is ``[0, 1]`` and 06:00 is ``[1, 0]``.
    """
    ### BEGIN SOLUTION
    seconds = np.asarray(timestamps, dtype=np.int64) % 86_400
    angle = 2.0 * np.pi * seconds / 86_400.0
    return np.stack([np.sin(angle), np.cos(angle)], axis=1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_hour_of_day_features", "locked": true, "points": 1, "schema_version": 3, "solution": false}
_midnight = 874_800_000 - 874_800_000 % 86_400  # a midnight in UTC
_points = np.asarray(hour_of_day_features(np.array([_midnight, _midnight + 6 * 3600, _midnight + 86_399])))
assert _points.shape == (3, 2), f"3 timestamps should give an array of shape (3, 2), got {_points.shape}"
assert np.allclose(_points[0], [0.0, 1.0], atol=1e-6), f"midnight should be [sin, cos] = [0, 1], got {_points[0]}"
assert np.allclose(_points[1], [1.0, 0.0], atol=1e-6), f"06:00 should be [1, 0], got {_points[1]}"
assert np.linalg.norm(_points[2] - _points[0]) < 1e-3, "23:59:59 and the next midnight should be almost the same point"
print("hour_of_day_features: visible tests passed")
### BEGIN HIDDEN TESTS
_many = np.asarray(hour_of_day_features(train_features["timestamp"].numpy()[:1000]))
assert np.allclose(np.linalg.norm(_many, axis=1), 1.0, atol=1e-6), "every point must lie on the unit circle"
assert np.allclose(_many, np.asarray(hour_of_day_features(train_features["timestamp"].numpy()[:1000] + 7 * 86_400)), atol=1e-6), "adding whole days must not change the features"
_noon = np.asarray(hour_of_day_features(np.array([_midnight + 12 * 3600])))[0]
assert np.allclose(_noon, [0.0, -1.0], atol=1e-6), f"noon should be [0, -1], got {_noon}"
### END HIDDEN TESTS

# %% [markdown]
# When are MovieLens users active? The histogram of the hour of the day (UTC) of the
# training ratings shows a clear daily rhythm, and the circle plot shows why the
# encoding suits it: neighbouring hours sit next to each other, including across
# midnight.

# %%
hours = (train_timestamps % 86_400) / 3600
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
left.hist(hours, bins=24, range=(0, 24), color="tab:blue")
left.set(title="Training ratings by hour of the day", xlabel="hour (UTC)", ylabel="ratings")
try:
    circle = hour_of_day_features(train_timestamps[:2000])
    right.scatter(circle[:, 1], circle[:, 0], c=hours[:2000], cmap="twilight", s=8)
except NotImplementedError:  # exercise 3 unsolved: the right panel waits for it
    right.text(0.5, 0.5, "solve exercise 3\nto see this panel", ha="center", va="center")
right.set(title="Hour of the day on the unit circle", xlabel="cos(angle)", ylabel="sin(angle)", aspect="equal")
plt.tight_layout()
plt.show()

# %% [markdown]
# Other numbers are **heavy-tailed**: most values are small and a few are huge. The
# number of ratings a movie has received is a typical case (lesson 02's long tail). A
# z-score of such a feature leaves almost every movie squeezed near the minimum and a
# handful of blockbusters far out. The **log transform** $x \mapsto \log(1 + x)$
# compresses the tail and spreads out the bulk, and the result can then be
# standardised as usual.

# %%
_, movie_counts = np.unique(train_features["movie_id"].numpy(), return_counts=True)
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
left.hist(movie_counts, bins=50, color="tab:orange")
left.set(title="Ratings per movie (training split)", xlabel="ratings", ylabel="movies")
right.hist(np.log1p(movie_counts), bins=50, color="tab:green")
right.set(title="After log(1 + x)", xlabel="log(1 + ratings)", ylabel="movies")
plt.tight_layout()
plt.show()
print(f"ratings per movie: median {np.median(movie_counts):.0f}, max {movie_counts.max()}")

# %% [markdown]
# ## 3. Categorical features
#
# ### 3.1 Vocabularies and embeddings
#
# A categorical feature goes through two steps:
#
# 1. a **lookup** layer maps each value to an integer index using a vocabulary:
#    `StringLookup` for strings (user ids, occupations) and `IntegerLookup` for
#    integers (genre labels, occupation labels);
# 2. an **`Embedding`** layer maps each index to a row of a trainable matrix of shape
#    `(vocabulary size, embedding dimension)`.
#
# What about a value that is **not** in the vocabulary — a user who signed up after
# the model was trained, or a typo? By default the lookup layers reserve index `0` for
# *out-of-vocabulary* (OOV) values (`num_oov_indices=1`), and known values start at 1.
# The embedding table therefore needs `len(vocabulary) + 1` rows, and every unknown
# value shares row 0. The model still produces a vector for an unknown user, so
# nothing crashes at serving time; how *useful* that vector is depends on whether row 0
# ever received training signal.
#
# (Lookup layers can also reserve a *mask* index for padding, `mask_token`; for ids we
# do not need one and pass `mask_token=None`. Text in section 4 does need one.)
#
# The vocabularies come from the **training split**: the model can only learn vectors
# for values it sees during training.

# %%
occupation_lookup = tf.keras.layers.StringLookup(mask_token=None)
occupation_lookup.adapt(train_features["user_occupation_text"])
print("vocabulary:", occupation_lookup.get_vocabulary()[:6], "...")
print("lookups:", occupation_lookup(tf.constant(["doctor", "student", "astronaut"])).numpy())
genre_lookup = tf.keras.layers.IntegerLookup(mask_token=None)
genre_lookup.adapt(tf.reshape(movie_features["movie_genres"], [-1])[tf.reshape(movie_features["movie_genres"], [-1]) >= 0])
print("genre labels", genre_lookup.get_vocabulary()[:5], "... ->", genre_lookup(tf.constant([4, 7, 99])).numpy())

# %% [markdown]
# "astronaut" is not an occupation in MovieLens, so it maps to the OOV index 0; the
# genre label 99 does the same. (`IntegerLookup` lists its OOV token as `-1` at the
# head of its vocabulary; adapting also orders the vocabulary by frequency, most
# frequent first.)
#
# ### Exercise 4 (2 points): an id embedding that survives unknown ids
#
# Write `make_id_embedding(vocabulary, embedding_dim)` returning a
# `tf.keras.Sequential` of a `StringLookup` built on `vocabulary` (one OOV index, no
# mask) followed by an `Embedding` with one row per index.
#
# **Hint:** pass the vocabulary to the layer's constructor (`vocabulary=...`) rather
# than adapting; the number of rows is `len(vocabulary) + 1`, or
# `lookup.vocabulary_size()`.

# %% nbgrader={"grade": false, "grade_id": "make_id_embedding", "locked": false, "schema_version": 3, "solution": true}
def make_id_embedding(vocabulary: np.ndarray, embedding_dim: int) -> tf.keras.Sequential:
    """Return ``Sequential([StringLookup, Embedding])`` mapping string ids to vectors.

    Args:
        vocabulary: the distinct known ids (bytes or str), e.g. the training users.
        embedding_dim: length of each embedding vector.

    Returns:
        A model mapping a string tensor of shape ``(n,)`` to floats of shape
        ``(n, embedding_dim)``. Its first layer is the ``StringLookup``: known ids get
        indices ``1 … len(vocabulary)``, any unknown id gets the OOV index ``0``, and
        the ``Embedding`` has a row for it, so unknown ids still get a (shared) vector.
    """
    ### BEGIN SOLUTION
    lookup = tf.keras.layers.StringLookup(vocabulary=np.asarray(vocabulary), mask_token=None, num_oov_indices=1)
    return tf.keras.Sequential([lookup, tf.keras.layers.Embedding(lookup.vocabulary_size(), embedding_dim)])
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_make_id_embedding", "locked": true, "points": 2, "schema_version": 3, "solution": false}
_users = np.unique(train_features["user_id"].numpy())
_model = make_id_embedding(_users, 16)
assert isinstance(_model.layers[0], tf.keras.layers.StringLookup), f"the first layer should be a StringLookup, got {type(_model.layers[0]).__name__}"
_ids = tf.constant([_users[0], _users[1], b"no-such-user", b"another-stranger"])
_index = _model.layers[0](_ids).numpy()
assert _index[2] == 0 and _index[3] == 0, f"unknown ids must map to the OOV index 0, got {_index[2:]}"
assert _index[0] >= 1 and _index[1] >= 1 and _index[0] != _index[1], f"known ids need their own indices >= 1, got {_index[:2]}"
_vectors = _model(_ids).numpy()
assert _vectors.shape == (4, 16), f"4 ids and embedding_dim=16 should give shape (4, 16), got {_vectors.shape}"
assert np.all(np.isfinite(_vectors)), "every id, known or not, must get a finite vector"
assert np.allclose(_vectors[2], _vectors[3]), "two unknown ids share the OOV row, so they must get the same vector"
assert not np.allclose(_vectors[0], _vectors[2]), "a known id must not get the OOV vector"
print("make_id_embedding: visible tests passed")
### BEGIN HIDDEN TESTS
_emb = [layer for layer in _model.layers if isinstance(layer, tf.keras.layers.Embedding)]
assert _emb and _emb[0].input_dim == len(_users) + 1, f"the Embedding needs len(vocabulary) + 1 = {len(_users) + 1} rows"
_all = _model.layers[0](tf.constant(_users)).numpy()
assert sorted(_all.tolist()) == list(range(1, len(_users) + 1)), "known ids should map to 1..len(vocabulary), each once"
assert make_id_embedding(np.array(["a", "b"]), 3)(tf.constant(["b", "zzz"])).shape == (2, 3), "should work with str vocabularies and other sizes"
### END HIDDEN TESTS

# %% [markdown]
# How big should an embedding be? A common rule of thumb for a category with $n$
# values takes a dimension of the order of $n^{1/4}$ to a few times that, rounded up to a
# convenient size (Google's feature-column guide suggested $n^{1/4}$); 943 users give
# about 6, so 32 dimensions are already generous. Small categories (21 occupations, 21
# genres) get 8 dimensions in our towers.
#
# ### 3.2 Hashing, for vocabularies too large to list
#
# Some categorical features have too many values to keep a vocabulary: zip codes of a
# whole country, search queries, URLs. Worse, new values keep arriving. The **hashing
# trick** skips the vocabulary: `tf.keras.layers.Hashing(num_bins)` maps each value to
# `hash(value) mod num_bins` with a fixed hash function (FarmHash). It needs no
# `adapt`, never meets an unknown value, and its memory is set by `num_bins`, not by
# the data. The price is **collisions**: different values can share a bin, and then
# they share an embedding. The curve below counts, for the zip codes of the training
# users, how many distinct zip codes end up sharing a bin with another one.

# %%
zip_codes = np.unique(train_features["user_zip_code"].numpy())
bins_grid = [64, 128, 256, 512, 1024, 2048, 4096, 8192]
collided = []
for num_bins in bins_grid:
    hashed = tf.keras.layers.Hashing(num_bins=num_bins)(zip_codes).numpy()
    _, bin_of, sizes = np.unique(hashed, return_inverse=True, return_counts=True)
    collided.append(float(np.mean(sizes[bin_of] > 1)))
plt.figure()
plt.semilogx(bins_grid, collided, marker="o", base=2)
plt.title(f"Hashing {len(zip_codes)} zip codes: share that collide")
plt.xlabel("num_bins")
plt.ylabel("share of zip codes sharing a bin")
plt.grid(True, alpha=0.3)
plt.show()
record("preprocessing.zip_codes", len(zip_codes))
record("preprocessing.zip_collision_share_1024", collided[bins_grid.index(1024)])
record("preprocessing.zip_collision_share_8192", collided[bins_grid.index(8192)])

# %% [markdown]
# With about as many bins as values, half of the values collide, and even with ten
# times more bins than values about one in ten still shares its bin: collisions fade
# only slowly (it is the birthday problem). Collisions are less harmful than they
# look, because the model can still tell colliding values apart through other
# features, and a rare value colliding with a frequent one mostly borrows the frequent
# one's vector. With only a few hundred zip codes a vocabulary would do here; the
# hashing trick matters at web scale.
#
# ## 4. Text: movie titles
#
# A title such as `"Twelve Monkeys (1995)"` carries information an id cannot: words
# shared with other titles ("Star Trek", "Batman", "Story"), and the release year.
# Three layers turn it into one vector:
#
# 1. **`TextVectorization`** *standardises* the string (lower case, punctuation
#    removed), *splits* it into words and *looks each word up* in a vocabulary built by
#    `adapt`. Index 0 is reserved for padding and index 1 for unknown words. A batch of
#    titles becomes an integer matrix of shape `(batch, longest title)`, with shorter
#    titles padded by zeros on the right.
# 2. **`Embedding(..., mask_zero=True)`** maps each index to a vector, giving
#    `(batch, length, dim)`, and also produces a boolean **mask** that is `False`
#    wherever the index was 0.
# 3. **Averaging** the word vectors over the length gives `(batch, dim)`. The average
#    must use only the real words: padding is an artefact of batching, and a title's
#    vector must not depend on the length of the other titles in its batch.
#
# The vocabulary comes from the movie catalogue, not from the ratings: the catalogue
# is known before any user rates anything, so adapting on it leaks nothing.

# %%
title_vectorizer = tf.keras.layers.TextVectorization()
title_vectorizer.adapt(movie_features["movie_title"])
title_vocabulary = title_vectorizer.get_vocabulary()
print(f"{len(title_vocabulary):,} tokens; the most frequent: {title_vocabulary[:12]}")
print(title_vectorizer(tf.constant(["Twelve Monkeys (1995)", "Star Wars (1977)", "Unknownword Returns"])).numpy())
record("preprocessing.title_vocabulary", len(title_vocabulary))

# %% [markdown]
# Years are among the most frequent tokens, so the title embedding already hears about
# the release year. We also extract it as a number: `release_year` (exported) reads
# the four digits in the final parentheses and returns 0 when a title has none; the
# candidate tower buckets it into five-year bins.

# %% tags=["export"]
def release_year(titles: tf.Tensor) -> tf.Tensor:
    """Release year from MovieLens titles such as ``b"Heat (1995)"`` as float32; 0 when absent.

    Works on a string tensor of any shape, inside or outside ``tf.function``.
    """
    year = tf.strings.regex_replace(titles, r"^.*\((\d{4})\)\s*$", r"\1")
    found = tf.strings.regex_full_match(year, r"\d{4}")
    return tf.where(found, tf.strings.to_number(tf.where(found, year, "0"), out_type=tf.float32), 0.0)


# %%
years = release_year(movie_features["movie_title"]).numpy()
print(release_year(tf.constant(["Heat (1995)", "Sabrina (1954)", "unknown"])).numpy())
print(f"release years from {years[years > 0].min():.0f} to {years.max():.0f}; {int(np.sum(years == 0))} title(s) without a year")

# %% [markdown]
# ### Masking, and why it matters
#
# Averaging with a mask computes, for each example,
#
# $$
# \bar{v} = \frac{\sum_t m_t \, v_t}{\max\left(1, \sum_t m_t\right)},
# $$
#
# where $v_t$ is the vector of position $t$ and $m_t \in \{0, 1\}$ says whether position
# $t$ is real. The $\max(1, \cdot)$ keeps an all-padding row (an empty title, a movie
# with no genres) at zero instead of dividing by zero. Keras layers that understand
# masks, such as `GlobalAveragePooling1D`, apply it automatically to a mask produced by
# `Embedding(mask_zero=True)`; without a mask, the zero index's embedding (a real,
# trainable vector) would be averaged in once per padding position.
#
# ### Exercise 5 (2 points): masked average
#
# Write `masked_average(vectors, mask)` computing the formula above.
#
# **Hint:** cast the mask to float and add a trailing axis so it broadcasts against the
# vectors; `tf.reduce_sum` over axis 1 for both numerator and count.

# %% nbgrader={"grade": false, "grade_id": "masked_average", "locked": false, "schema_version": 3, "solution": true}
def masked_average(vectors: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Average ``vectors`` over axis 1, counting only positions where ``mask`` is true.

    Args:
        vectors: float tensor of shape ``(batch, length, dim)``.
        mask: bool tensor of shape ``(batch, length)``; ``False`` marks padding.

    Returns:
        Float tensor of shape ``(batch, dim)``. Padded positions do not influence the
        result at all; a row whose mask is all ``False`` gives a zero vector (no NaN).
    """
    ### BEGIN SOLUTION
    weights = tf.cast(mask, vectors.dtype)[:, :, tf.newaxis]
    total = tf.reduce_sum(vectors * weights, axis=1)
    count = tf.reduce_sum(weights, axis=1)
    return total / tf.maximum(count, 1.0)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_masked_average", "locked": true, "points": 2, "schema_version": 3, "solution": false}
_rng = np.random.default_rng(3)
_vec = tf.constant(_rng.normal(size=(3, 4, 2)), tf.float32)
_mask = tf.constant([[True, True, False, False], [True, True, True, True], [False, False, False, False]])
_out = masked_average(_vec, _mask).numpy()
assert _out.shape == (3, 2), f"(batch=3, length=4, dim=2) should average to shape (3, 2), got {_out.shape}"
assert np.allclose(_out[0], _vec.numpy()[0, :2].mean(axis=0), atol=1e-6), "row 0 should be the mean of its first two vectors only"
assert np.allclose(_out[1], _vec.numpy()[1].mean(axis=0), atol=1e-6), "row 1 (no padding) should be the plain mean"
assert np.all(np.isfinite(_out[2])) and np.allclose(_out[2], 0.0), f"an all-padding row should give zeros, not NaN; got {_out[2]}"
_noisy = _vec.numpy().copy()
_noisy[~_mask.numpy()] = 1e6
assert np.allclose(masked_average(tf.constant(_noisy), _mask).numpy(), _out, atol=1e-4), "the values at padded positions must not change the result"
print("masked_average: visible tests passed")
### BEGIN HIDDEN TESTS
_wide = tf.concat([_vec, tf.constant(_rng.normal(size=(3, 5, 2)), tf.float32)], axis=1)
_wide_mask = tf.concat([_mask, tf.zeros((3, 5), tf.bool)], axis=1)
assert np.allclose(masked_average(_wide, _wide_mask).numpy(), _out, atol=1e-6), "extra padding columns must not change the result"
_single = masked_average(tf.ones((1, 3, 4)) * 2.0, tf.constant([[False, True, False]])).numpy()
assert np.allclose(_single, 2.0), f"one real position of value 2 should average to 2, got {_single}"
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 6 (2 points): a title encoder
#
# Write `build_title_encoder(titles, embedding_dim)` returning a Keras model that maps
# a batch of title strings of shape `(n,)` to vectors of shape `(n, embedding_dim)`:
# `TextVectorization` adapted on `titles`, an `Embedding` with `mask_zero=True`, and a
# mask-aware average. Identical titles must get identical vectors, wherever they sit
# and whatever else is in the batch.
#
# **Hint:** `tf.keras.Sequential([vectorizer, embedding, tf.keras.layers.GlobalAveragePooling1D()])`
# passes the mask from the embedding to the pooling for you. The embedding needs
# `vectorizer.vocabulary_size()` rows.

# %% nbgrader={"grade": false, "grade_id": "build_title_encoder", "locked": false, "schema_version": 3, "solution": true}
def build_title_encoder(titles: tf.Tensor, embedding_dim: int) -> tf.keras.Model:
    """Return a model: title strings ``(n,)`` -> mask-averaged word embeddings ``(n, embedding_dim)``.

    Args:
        titles: the strings to build the word vocabulary from (the movie catalogue).
        embedding_dim: length of each word vector and of the output.

    Returns:
        A Keras model. Padding positions must not affect the output, so a title gets the
        same vector alone or in a batch with longer titles. Unknown words map to the
        OOV token and still embed.
    """
    ### BEGIN SOLUTION
    vectorizer = tf.keras.layers.TextVectorization()
    vectorizer.adapt(titles)
    return tf.keras.Sequential([
        vectorizer,
        tf.keras.layers.Embedding(vectorizer.vocabulary_size(), embedding_dim, mask_zero=True),
        tf.keras.layers.GlobalAveragePooling1D(),
    ])
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_build_title_encoder", "locked": true, "points": 2, "schema_version": 3, "solution": false}
_encoder = build_title_encoder(movie_features["movie_title"], 8)
_alone = _encoder(tf.constant(["Toy Story (1995)"])).numpy()
_batch = _encoder(tf.constant(["Star Wars (1977)", "Toy Story (1995)", "Dr. Strangelove or: How I Learned to Stop Worrying and Love the Bomb (1963)"])).numpy()
assert _alone.shape == (1, 8) and _batch.shape == (3, 8), f"expected shapes (1, 8) and (3, 8), got {_alone.shape} and {_batch.shape}"
assert np.allclose(_alone[0], _batch[1], atol=1e-6), "the same title must get the same vector alone and next to a long title: padding must be masked"
_twice = _encoder(tf.constant(["Fargo (1996)", "Heat (1995)", "Fargo (1996)"])).numpy()
assert np.allclose(_twice[0], _twice[2]), "identical titles must get identical embeddings"
assert not np.allclose(_twice[0], _twice[1]), "different titles should get different embeddings"
print("build_title_encoder: visible tests passed")
### BEGIN HIDDEN TESTS
_strange = _encoder(tf.constant(["Qwertyuiop Zxcvbnm", "Heat (1995)"])).numpy()
assert np.all(np.isfinite(_strange)), "titles made of unknown words must still embed (OOV token)"
_again = _encoder(tf.constant(["Heat (1995)"] * 4 + ["a b c d e f g h i j k l m n o p"])).numpy()
assert np.allclose(_again[:4], _strange[1], atol=1e-6), "a title's vector must not depend on how much padding its batch needs"
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Multi-valued features: genres
#
# A movie has between one and six genres. Two standard encodings:
#
# * **multi-hot**: a vector with one slot per genre, 1 where the movie has the genre and
#   0 elsewhere. It is simple, exact and fixed-size; a `Dense` layer on top learns one
#   weight per genre. `tf.keras.layers.CategoryEncoding(num_tokens, output_mode="multi_hot")`
#   builds it from integer ids.
# * **averaged embeddings**: embed each genre and average the vectors with a mask, as
#   for title words. The genre vectors are learned jointly with everything else and can
#   place related genres close together.
#
# Both start from the padded genre matrix of `read_features` (or a ragged batch). The
# towers use the averaged embedding; multi-hot is the exercise, and it is a handy
# sanity check: the multi-hot matrix of the catalogue counts how often each genre
# occurs.
#
# ### Exercise 7 (1 point): multi-hot genres
#
# Write `genres_multi_hot(genres, num_genres)` for a genre matrix padded with `-1`.
#
# **Hint:** one approach shifts the labels by one (padding becomes 0), encodes with
# `CategoryEncoding(num_tokens=num_genres + 1, output_mode="multi_hot")` and drops
# column 0. Another uses `tf.one_hot` (which gives all zeros for `-1`) and a maximum
# over axis 1.

# %% nbgrader={"grade": false, "grade_id": "genres_multi_hot", "locked": false, "schema_version": 3, "solution": true}
def genres_multi_hot(genres: tf.Tensor, num_genres: int) -> tf.Tensor:
    """Multi-hot encode a padded genre matrix.

    Args:
        genres: int tensor ``(batch, width)`` of genre labels in ``0 … num_genres - 1``,
            padded with ``-1``.
        num_genres: number of possible genres.

    Returns:
        float32 tensor ``(batch, num_genres)``: 1.0 at each genre the row contains, 0.0
        elsewhere (a genre listed twice still gives 1.0; padding gives nothing).
    """
    ### BEGIN SOLUTION
    one_hot = tf.one_hot(tf.cast(genres, tf.int32), depth=num_genres, dtype=tf.float32)
    return tf.reduce_max(one_hot, axis=1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_genres_multi_hot", "locked": true, "points": 1, "schema_version": 3, "solution": false}
_hot = np.asarray(genres_multi_hot(tf.constant([[0, 3, -1], [2, -1, -1], [-1, -1, -1]], tf.int64), 5))
assert _hot.shape == (3, 5), f"3 movies and 5 genres should give shape (3, 5), got {_hot.shape}"
assert _hot.tolist() == [[1, 0, 0, 1, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]], f"wrong multi-hot rows: {_hot.tolist()} (padding -1 must give nothing)"
_catalogue = np.asarray(genres_multi_hot(movie_features["movie_genres"], NUM_GENRES))
_lists = movie_features["movie_genres"].numpy()
assert np.array_equal(_catalogue.sum(axis=1), (_lists >= 0).sum(axis=1)), "each movie's row should sum to its number of genres"
print("genres_multi_hot: visible tests passed")
### BEGIN HIDDEN TESTS
_dup = np.asarray(genres_multi_hot(tf.constant([[1, 1, -1]], tf.int64), 3))
assert _dup.tolist() == [[0, 1, 0]], f"a genre listed twice is still 1.0, got {_dup.tolist()}"
_counts = np.bincount(_lists[_lists >= 0], minlength=NUM_GENRES)
assert np.array_equal(_catalogue.sum(axis=0), _counts), "column sums should count the movies of each genre"
### END HIDDEN TESTS

# %% [markdown]
# The genre counts of the catalogue, and how an averaged genre embedding ignores the
# padding: the same movie's genre vector does not change when its genre list is padded
# wider.

# %%
genre_names = tfds.builder("movielens/100k-movies").info.features["movie_genres"].feature.names
genre_counts = np.bincount(movie_features["movie_genres"].numpy().ravel()[movie_features["movie_genres"].numpy().ravel() >= 0], minlength=NUM_GENRES)
order = np.argsort(genre_counts)[::-1]
plt.figure(figsize=(9, 3.5))
plt.bar([genre_names[i] for i in order], genre_counts[order], color="tab:purple")
plt.xticks(rotation=60, ha="right")
plt.title("Movies per genre in the catalogue")
plt.ylabel("movies")
plt.tight_layout()
plt.show()
print(f"{int(np.sum(genre_counts > 0))} of the {len(genre_names)} genre names occur in the catalogue")
record("preprocessing.genres_used", int(np.sum(genre_counts > 0)))

genre_embedding = tf.keras.layers.Embedding(NUM_GENRES + 1, 4, mask_zero=True)
narrow = tf.constant([[7, 4, -1]], tf.int64)
wide = tf.constant([[7, 4, -1, -1, -1, -1]], tf.int64)
for padded in (narrow, wide):
    vectors = genre_embedding(padded + 1)  # -1 (padding) becomes index 0, the masked index
    pooled = tf.keras.layers.GlobalAveragePooling1D()(vectors, mask=genre_embedding.compute_mask(padded + 1))
    print(f"width {padded.shape[1]}: {np.round(pooled.numpy()[0], 4)}")

# %% [markdown]
# The TFDS genre label set has 21 names because it is shared with the larger MovieLens
# releases; MovieLens 100k uses 19 of them ("IMAX" and "(no genres listed)" never occur).
#
# ## 6. Adapt on the training split only
#
# Every `adapt` call *learns from data*: a mean, a variance, bucket boundaries, a
# vocabulary. If that data includes the test split, information about the test set
# reaches the model before evaluation — **leakage** — and the test score is no longer
# an honest estimate of how the model will do on new data. With the random split the
# effect on a mean is tiny, because training and test ratings come from the same
# period. The temporal split of lesson 02 shows what really goes wrong when the future
# is different from the past:
#
# * the test ratings all lie *after* the training period, so their z-scores (fitted on
#   training data) are large and positive: the model sees values it never trained on.
#   That is real and honest: it is what will happen in production. Fitting on all the
#   data would hide it.
# * time buckets fitted on *all* the data put boundaries inside the test period. Those
#   buckets receive no training example, so their embeddings stay at their random
#   initial values, yet the model uses them at test time.

# %%
all_ts = to_numpy(ratings, ("timestamp",))["timestamp"]
cutoff = temporal_cutoff(all_ts, 0.8)  # the test cutoff of lesson 02's temporal_split
past, future = all_ts[all_ts <= cutoff], all_ts[all_ts > cutoff]
print("temporal cutoff:", datetime.datetime.fromtimestamp(cutoff, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"))
fitted_on_past = tf.keras.layers.Normalization(axis=None)
fitted_on_past.adapt(past.astype(np.float64))
print(f"test z-scores when fitted on the past: mean {fitted_on_past(future.astype(np.float64)).numpy().mean():.2f}")

boundaries_all = np.quantile(all_ts.astype(np.float64), np.linspace(0, 1, 101)[1:-1])
bucket_all = np.searchsorted(boundaries_all, all_ts, side="right")
seen_in_training = np.unique(bucket_all[all_ts <= cutoff])
unseen = sorted(set(range(100)) - set(seen_in_training.tolist()))
share_unseen = np.isin(bucket_all[all_ts > cutoff], unseen).mean()
print(f"100 buckets fitted on all ratings: {len(unseen)} buckets have no training rating;")
print(f"they hold {share_unseen:.0%} of the test ratings, whose time embeddings would never be trained")
record("preprocessing.leaky_untrained_buckets", len(unseen))
record("preprocessing.leaky_untrained_test_share", float(share_unseen))

# %% [markdown]
# The same reasoning applies to vocabularies: adapting the user lookup on all ratings
# gives test-only users their own rows, which training never updates, instead of the
# OOV row. The rule is simple: **call `adapt` on the training split, and only on it.**
# Metadata that exists before any interaction, such as the movie catalogue's titles, is
# not part of the split and is safe to adapt on.
#
# ## 7. Composing the towers
#
# A retrieval model compares a **query** with **candidates** by the dot product of two
# vectors of the same size. Each side is a *tower*: a Keras model that takes the raw
# feature dictionary of a batch and returns one vector per example. Inside a tower, each
# feature goes through its preprocessing and embedding, the results are concatenated,
# and a final `Dense` layer (optionally after hidden layers) projects them to the
# common size:
#
# ```text
# query tower                                     candidate tower
# user_id    -> StringLookup -> Embedding(32)      movie_id     -> StringLookup -> Embedding(32)
# timestamp  -> Discretization -> Embedding(32)    movie_title  -> TextVectorization -> Embedding(32), masked mean
#            -> Normalization (z-score)                         -> release year -> Discretization -> Embedding(8)
#            -> sin/cos of hour and weekday        movie_genres -> Embedding(8), masked mean
# raw_user_age -> Normalization                              |
# user_gender  -> 0/1                                         concatenate -> Dense(32)
# user_occupation_text -> StringLookup -> Embedding(8)
#            concatenate -> Dense(32)
# ```
#
# ### Exercise 8 (2 points): a small user tower
#
# Before looking at the library's towers, compose a small one yourself. Write
# `build_user_tower(train_features, embedding_dim)` returning a Keras model that maps a
# batch of raw features to `(batch, embedding_dim)` using three features: `user_id`
# (lookup + embedding), `timestamp` (a `Normalization` adapted on the training
# timestamps) and `user_occupation_text` (lookup + small embedding), concatenated and
# projected by a `Dense(embedding_dim)`. It must ignore any other keys in the batch.
#
# **Hint:** subclass `tf.keras.Model`: create the layers in `__init__` (building the
# vocabularies from `train_features`), and in `call(self, features)` read only the three
# keys you need. Reshape the normalised timestamp to `(batch, 1)` before concatenating.

# %% nbgrader={"grade": false, "grade_id": "build_user_tower", "locked": false, "schema_version": 3, "solution": true}
def build_user_tower(train_features: dict[str, tf.Tensor], embedding_dim: int) -> tf.keras.Model:
    """Return a Keras model: raw feature dict ``{name: (batch,) tensor}`` -> ``(batch, embedding_dim)``.

    Args:
        train_features: the training split as returned by ``read_features``; the
            vocabularies and the timestamp statistics come from here only.
        embedding_dim: output size.

    Returns:
        A model using ``user_id``, ``timestamp`` and ``user_occupation_text`` and
        ignoring every other key. Unknown user ids and occupations still give a vector.
    """
    ### BEGIN SOLUTION
    class UserTower(tf.keras.Model):
        def __init__(self) -> None:
            super().__init__()
            users = np.unique(train_features["user_id"].numpy())
            occupations = np.unique(train_features["user_occupation_text"].numpy())
            self.user_lookup = tf.keras.layers.StringLookup(vocabulary=users, mask_token=None)
            self.user_embedding = tf.keras.layers.Embedding(self.user_lookup.vocabulary_size(), embedding_dim)
            self.occupation_lookup = tf.keras.layers.StringLookup(vocabulary=occupations, mask_token=None)
            self.occupation_embedding = tf.keras.layers.Embedding(self.occupation_lookup.vocabulary_size(), 8)
            self.time_normalizer = tf.keras.layers.Normalization(axis=None)
            self.time_normalizer.adapt(train_features["timestamp"].numpy().astype(np.float64))
            self.projection = tf.keras.layers.Dense(embedding_dim)

        def call(self, features: dict) -> tf.Tensor:
            time = self.time_normalizer(tf.cast(features["timestamp"], tf.float64))
            parts = [
                self.user_embedding(self.user_lookup(features["user_id"])),
                tf.reshape(tf.cast(time, tf.float32), (-1, 1)),
                self.occupation_embedding(self.occupation_lookup(features["user_occupation_text"])),
            ]
            return self.projection(tf.concat(parts, axis=1))

    return UserTower()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_build_user_tower", "locked": true, "points": 2, "schema_version": 3, "solution": false}
_tower = build_user_tower(train_features, 12)
_raw = {name: value[:5] for name, value in train_features.items()}  # every raw feature, as a batch of 5
_raw["movie_genres"] = tf.RaggedTensor.from_tensor(_raw["movie_genres"], padding=GENRE_PAD)  # genres ragged, as from ragged_batch
_out = _tower(_raw).numpy()
assert _out.shape == (5, 12), f"a batch of 5 raw examples should give shape (5, 12), got {_out.shape}"
assert np.all(np.isfinite(_out)), "the tower output must be finite"
_one = {"user_id": tf.constant([b"1", b"no-such-user"]), "timestamp": tf.constant([880_000_000, 880_000_000], tf.int64),
        "user_occupation_text": tf.constant([b"doctor", b"astronaut"])}
assert np.all(np.isfinite(_tower(_one).numpy())), "unknown user ids and occupations must still give a finite vector"
_later = dict(_one, timestamp=tf.constant([890_000_000, 890_000_000], tf.int64))
assert not np.allclose(_tower(_one).numpy(), _tower(_later).numpy()), "changing only the timestamp should change the output: use it"
_other_job = dict(_one, user_occupation_text=tf.constant([b"student", b"student"]))
assert not np.allclose(_tower(_one).numpy()[0], _tower(_other_job).numpy()[0]), "changing only the occupation should change the output: use it"
print("build_user_tower: visible tests passed")
### BEGIN HIDDEN TESTS
_norms = [layer for layer in _tower.submodules if isinstance(layer, tf.keras.layers.Normalization)]
_train_mean = float(train_features["timestamp"].numpy().astype(np.float64).mean())
assert any(abs(float(np.asarray(layer.mean).squeeze()) - _train_mean) < 1_000 for layer in _norms), "use a Normalization layer adapted on the training timestamps"
_other_user = dict(_one, user_id=tf.constant([b"2", b"no-such-user"]))
assert not np.allclose(_tower(_one).numpy()[0], _tower(_other_user).numpy()[0]), "changing only the user id should change the output"
assert np.allclose(_tower(_one).numpy(), _tower(_one).numpy()), "the tower must be deterministic"
### END HIDDEN TESTS

# %% [markdown]
# ### The library towers
#
# The towers that lessons 04 to 07 use follow the same pattern with all the features of
# this lesson. Two design choices are worth pointing out:
#
# * `use_features=False` gives the **id-only** towers of the TensorFlow Recommenders
#   basic retrieval tutorial: the query vector *is* the user's embedding and the
#   candidate vector *is* the movie's embedding. Lesson 04 uses them as the baseline.
# * `time_features` says what the query tower may know about *when* the query happens.
#   The default, `"clock"`, is the hour of the day and the day of the week (as sin/cos):
#   coarse, shared by every user, and known for any live request. `"none"` drops time.
#   `"session"` adds fine equal-frequency buckets of the exact timestamp (1,000 buckets
#   of 72 training ratings each) and its z-score: on a random split a bucket nearly pins
#   down one user's rating session, whose other ratings are in training, so it is a
#   **leak**, and lesson 04 keeps it only as a counter-example to measure.
# * Statistics that define the features are computed with NumPy from the training
#   split and passed to the layers' constructors (`mean=`, `variance=`,
#   `bin_boundaries=`), which is exact and fast; `adapt` would do the same job
#   approximately (section 2.2).
#
# The towers accept batches of raw features from any pipeline: genres may be ragged
# (`ragged_batch`) or padded, and keys a tower does not use are ignored.

# %% tags=["export"]
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


# %% [markdown]
# Both towers in action on a small batch of raw training examples. The query tower
# returns one 32-dimensional vector per rating, the candidate tower one per movie, and
# the dot product of the two is the score a retrieval model will learn to make high for
# movies the user rated.

# %%
query_tower = build_query_tower(train_features)
candidate_tower = build_candidate_tower(movie_features)
raw_batch = {name: value[:4] for name, value in train_features.items()}
query_vectors = query_tower(raw_batch)
candidate_vectors = candidate_tower(raw_batch)
print("query vectors:", query_vectors.shape, " candidate vectors:", candidate_vectors.shape)
print("scores (untrained):", np.round(tf.reduce_sum(query_vectors * candidate_vectors, axis=1).numpy(), 3))
query_tower.summary()
candidate_tower.summary()

# %% [markdown]
# A last check of the properties this lesson cared about, on the library towers:
# identical titles give identical title vectors, masking makes the genre padding width
# irrelevant, and an unknown user still gets a vector.

# %%
twice = {name: tf.concat([value[:1], value[:1]], axis=0) for name, value in movie_features.items()}
wider = dict(twice, movie_genres=tf.pad(twice["movie_genres"], [[0, 0], [0, 4]], constant_values=GENRE_PAD))
vectors, vectors_wide = candidate_tower(twice).numpy(), candidate_tower(wider).numpy()
print("same movie twice -> same vector:", np.allclose(vectors[0], vectors[1]))
print("wider genre padding -> same vector:", np.allclose(vectors, vectors_wide))
stranger = dict(raw_batch, user_id=tf.constant([b"no-such-user"] * 4))
print("unknown user -> finite vector:", bool(np.all(np.isfinite(query_tower(stranger).numpy()))))
record("preprocessing.query_params", query_tower.count_params())
record("preprocessing.candidate_params", candidate_tower.count_params())

# %% [markdown]
# ## Summary
#
# * Raw features need three kinds of work before a network can use them: strings to
#   indices to vectors, numbers to a sensible scale, and variable-length values to
#   fixed-size vectors.
# * `Normalization` z-scores numbers; `Discretization` buckets them so that each bucket
#   can get its own embedding (check the bucket counts: `adapt` approximates
#   quantiles). Cyclic values go on the unit circle; heavy-tailed counts get a log.
# * `StringLookup` / `IntegerLookup` reserve an out-of-vocabulary index, so unknown ids
#   still embed; `Hashing` trades collisions for not having to list a vocabulary.
# * `TextVectorization` + `Embedding(mask_zero=True)` + a masked average turns a title
#   into a vector that does not depend on padding; genres work the same way, or as
#   multi-hot vectors.
# * Adapt on the training split only.
# * A tower is a Keras model from the raw feature dictionary to one vector.
#
# From `movierec.preprocessing`, later lessons import `QUERY_FEATURES`,
# `CANDIDATE_FEATURES`, `NUM_GENRES`, `GENRE_PAD`, `pad_genres`, `read_features`,
# `release_year`, `QueryTower`, `CandidateTower`, `build_query_tower` and
# `build_candidate_tower`.

# %% [markdown]
# ## References
#
# * Keras documentation, "Working with preprocessing layers."
#   <https://keras.io/guides/preprocessing_layers/>
# * TensorFlow API: `tf.keras.layers.Normalization`, `Discretization`, `StringLookup`,
#   `IntegerLookup`, `Hashing`, `TextVectorization`, `CategoryEncoding`,
#   `GlobalAveragePooling1D`. <https://www.tensorflow.org/api_docs/python/tf/keras/layers>
# * Keras guide, "Understanding masking & padding."
#   <https://www.tensorflow.org/guide/keras/understanding_masking_and_padding>
# * TensorFlow Recommenders, "Using side features: feature preprocessing" and "Taking
#   advantage of context features." <https://www.tensorflow.org/recommenders/examples/featurization>,
#   <https://www.tensorflow.org/recommenders/examples/context_features>
# * K. Weinberger, A. Dasgupta, J. Langford, A. Smola, J. Attenberg (2009). "Feature
#   Hashing for Large Scale Multitask Learning." *ICML 2009.*
#   <https://arxiv.org/abs/0902.2206>
# * Google Developers Blog (2017), "Introducing TensorFlow Feature Columns" (the
#   fourth-root rule of thumb for embedding sizes).
#   <https://developers.googleblog.com/2017/11/introducing-tensorflow-feature-columns.html>
# * P. Covington, J. Adams, E. Sargin (2016). "Deep Neural Networks for YouTube
#   Recommendations." *RecSys '16* (normalising continuous features, example age).
#   <https://doi.org/10.1145/2959100.2959190>
# * F. M. Harper, J. A. Konstan (2015). "The MovieLens Datasets: History and Context."
#   *ACM TiiS* 5(4). <https://doi.org/10.1145/2827872>
