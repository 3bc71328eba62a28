# %% [markdown]
# # Lesson 03 — Preprocessing: from raw features to vectors
#
# A rating in MovieLens is a small bundle of facts: a user id such as `b'138'`, a Unix
# timestamp such as `879024327`, an age, an occupation, a zip code, a movie title and a
# list of genre numbers. A neural network wants fixed-size vectors of floats on a
# sensible scale instead. This lesson builds the bridge with Keras preprocessing
# layers, and ends with the two **towers** that lesson 04 trains: one turns a query (a
# user at a moment in time) into a vector, the other a movie.
#
# In this lesson you will:
#
# * scale numbers with `Normalization`, bucket them with `Discretization`, and use
#   cyclic and log transforms where they fit;
# * turn ids and categories into vectors with lookups and `Embedding`, handle unknown
#   ids, and use `Hashing` when a vocabulary is too large to list;
# * embed titles with `TextVectorization` and pool word vectors with a **mask**;
# * encode the genres of a movie as a multi-hot vector or an averaged embedding;
# * see how adapting a layer on the wrong data leaks the test set;
# * compose a query tower and a candidate tower that map raw features to one vector.
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
# The tools are **Keras preprocessing layers**. Most have a state (a vocabulary, a mean
# and variance, bucket boundaries) computed once from data by `layer.adapt(data)`.
# Because they are layers, they live *inside* the model: the same code transforms the
# data at training and at serving time, which removes a classic bug,
# **training/serving skew**.
#
# The scale problem in one `Dense` unit, on raw timestamps and on days since the first
# rating:

# %%
first_timestamps = np.array([[874_724_710.0], [879_024_327.0], [893_286_638.0]])
unit = tf.keras.layers.Dense(1, kernel_initializer=tf.keras.initializers.RandomUniform(-0.1, 0.1, seed=0))
print("raw seconds ->", unit(first_timestamps).numpy().ravel())
print("days        ->", unit((first_timestamps - first_timestamps[0]) / 86_400).numpy().ravel())

# %% [markdown]
# We need the training split in memory to adapt layers on it. `read_features` (exported)
# reads a dataset of raw feature dictionaries in large batches into one dictionary of
# tensors. Because `movie_genres` varies in length, it batches with `padded_batch`,
# which pads each batch's genre lists to a rectangle with `-1`, a value no genre uses,
# and then widens every batch to the longest list of all. (`ragged_batch` gives the
# same columns after a `to_tensor`, but building ragged batches element by element
# costs several times the CPU on 100,000 ratings.) The constants name the features
# that each tower reads.

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
# **Hint:** the `Normalization` API page explains its `axis` argument: you want every
# value of a 1-D batch treated as one sample of a single scalar feature. Its statistics
# are learned with `adapt`. Timestamps are `int64`; `float64` keeps the arithmetic
# exact. `adapt` reads an array in batches of 32 unless told otherwise; a mean and a
# variance come out the same however the data is batched, so one batch
# (`batch_size=len(timestamps)`) gives the same layer in a fraction of the time.

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
    layer.adapt(np.asarray(timestamps, dtype=np.float64), batch_size=max(len(timestamps), 1))
    return layer
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_fit_timestamp_normalizer", "locked": true, "points": 2, "schema_version": 3, "solution": false}
from movierec.checks import close as _close, plain as _plain
_train_ts = train_features["timestamp"].numpy()
_layer = fit_timestamp_normalizer(_train_ts)
assert isinstance(_layer, tf.keras.layers.Normalization), f"return a tf.keras.layers.Normalization, got {type(_layer).__name__}"
assert _layer.is_adapted, "the layer's statistics must be learned from the timestamps with adapt(...), not typed in or borrowed"
_z = _plain(_layer(_train_ts.astype(np.float64)))
assert _z.shape == _train_ts.shape, f"a batch of shape {_train_ts.shape} should give z-scores of the same shape, got {_z.shape} (use axis=None)"
assert abs(float(_z.mean())) < 1e-3, f"on the training split the z-scores should have mean about 0, got {float(_z.mean()):.4f}"
assert abs(float(_z.std()) - 1) < 1e-3, f"on the training split the z-scores should have standard deviation about 1, got {float(_z.std()):.4f}"
print("fit_timestamp_normalizer: visible tests passed")
### BEGIN HIDDEN TESTS
_small = np.array([10, 20, 30, 40], dtype=np.int64)
_zs = _plain(fit_timestamp_normalizer(_small)(_small.astype(np.float64)))
_expected = (_small - 25) / np.std(_small)
assert _close(_zs, _expected, atol=1e-4), f"on [10, 20, 30, 40] expected {_expected.tolist()}, got {_zs.tolist()}"
_later = np.array([_train_ts.mean() + _train_ts.std(), 2 * _train_ts.max()], dtype=np.float64)
_expected = (_later - _train_ts.mean()) / _train_ts.std()
_got = _plain(_layer(_later))
assert _close(_got, _expected, rtol=1e-3, atol=1e-2), f"new timestamps must be scaled with the training mean and standard deviation (not their own): expected {_expected.tolist()}, got {_got.tolist()}"
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
# **Pitfall:** `adapt` only *approximates* the quantiles. It reads its input in batches
# (32 values at a time when it is given an array), summarises each batch, merges that
# into a running summary and squeezes the result back to about `1 / epsilon` points
# (`epsilon` defaults to `0.01`: 100 points) by interpolating between them. Each squeeze
# moves the boundaries a little, and over the thousands of batches of a training split
# the errors add up. It is tempting to blame the data instead: MovieLens timestamps come
# in bursts (a user rates dozens of movies within minutes, so many ratings share a
# second). The cell below tells the two apart by adapting the same ten-bucket layer three
# ways: on the timestamps with `adapt`'s default batches, on the same timestamps in a
# single batch, and on synthetic normal values that have no ties at all.

# %%
train_timestamps = train_features["timestamp"].numpy()
print(f"{len(np.unique(train_timestamps)):,} distinct timestamps among {len(train_timestamps):,} training ratings")
record("preprocessing.distinct_train_timestamps", len(np.unique(train_timestamps)))


def bucket_shares(values: np.ndarray, **adapt_args) -> np.ndarray:
    """The share of ``values`` in each bucket of a ten-bucket ``Discretization`` adapted on them."""
    layer = tf.keras.layers.Discretization(num_bins=10)
    layer.adapt(values, **adapt_args)
    return np.bincount(layer(values).numpy(), minlength=10) / len(values)


seconds = train_timestamps.astype(np.float64)
no_ties = np.random.default_rng(42).normal(size=len(seconds))
max_share = {}
for label, values, adapt_args in (("timestamps, default batches", seconds, {}),
                                  ("timestamps, one batch", seconds, {"batch_size": len(seconds)}),
                                  ("normal values without ties, default batches", no_ties, {})):
    shares = bucket_shares(values, **adapt_args)
    max_share[label] = float(shares.max())
    print(f"{label:<45} shares {np.round(shares, 3)}")
record("preprocessing.default_discretization_max_share", max_share["timestamps, default batches"])
record("preprocessing.one_batch_discretization_max_share", max_share["timestamps, one batch"])
record("preprocessing.no_ties_discretization_max_share", max_share["normal values without ties, default batches"])
assert max_share["timestamps, one batch"] < 0.12 < max_share["timestamps, default batches"], max_share
assert max_share["normal values without ties, default batches"] > 0.12, "the text says ties are not the cause"

# %% [markdown]
# With ten buckets each should hold 10% of the ratings. With the default batches the
# largest holds about twice that, on the timestamps and on the tie-free normal values
# alike; read in one batch (a single summary, squeezed once), the timestamps' buckets
# come out even. So the batching, not the bursts, is to blame. `adapt(values,
# batch_size=len(values))` or a smaller `epsilon` fixes it on data this small; in every
# case, look at the bucket counts after adapting.
#
# ### Exercise 2 (2 points): equal-frequency time buckets, by hand
#
# Compute the boundaries yourself so that every bucket starts at a real rating
# (`np.quantile` would interpolate between ratings). With $n$ sorted timestamps and $k$
# buckets, bucket $i$ ($1 \le i < k$) starts at the timestamp at position
# $\lfloor i n / k \rfloor$ (from 0). Bursts of identical timestamps can repeat a
# boundary: keep each value once. Write `fit_time_buckets(timestamps, num_buckets)`
# returning a `Discretization` layer with exactly these boundaries.
#
# **Hint:** the `Discretization` API page shows how to give the layer its boundaries
# instead of adapting it. Read the positions in the sorted array with its repeats;
# de-duplicate last.

# %% nbgrader={"grade": false, "grade_id": "fit_time_buckets", "locked": false, "schema_version": 3, "solution": true}
def fit_time_buckets(timestamps: np.ndarray, num_buckets: int) -> tf.keras.layers.Discretization:
    """Return a ``Discretization`` layer whose buckets each start at a rating's timestamp.

    Args:
        timestamps: 1-D array of Unix timestamps (the training split's), in any order.
        num_buckets: number of buckets asked for, at least 2.

    Returns:
        A layer mapping ``float64`` timestamps of shape ``(n,)`` to bucket ids of shape
        ``(n,)``. Its boundaries are the sorted timestamps at positions
        ``i * n // num_buckets`` for ``i = 1 … num_buckets - 1``, each value kept once,
        in increasing order, so ids run from 0 to (number of distinct boundaries).
    """
    ### BEGIN SOLUTION
    values = np.sort(np.asarray(timestamps, dtype=np.float64))
    positions = np.arange(1, num_buckets) * len(values) // num_buckets
    boundaries = np.unique(values[positions])
    return tf.keras.layers.Discretization(bin_boundaries=boundaries.tolist())
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_fit_time_buckets", "locked": true, "points": 2, "schema_version": 3, "solution": false}
from movierec.checks import equal as _equal, ints as _ints, plain as _plain
_layer = fit_time_buckets(np.array([70, 0, 50, 10, 90, 30, 20, 80, 40, 60]), 5)
assert isinstance(_layer, tf.keras.layers.Discretization), f"return a tf.keras.layers.Discretization, got {type(_layer).__name__}"
_bounds = _plain(_layer.bin_boundaries)
assert _equal(_bounds, [20.0, 40.0, 60.0, 80.0]), f"10 timestamps 0, 10, ..., 90 in 5 buckets: boundaries should be the sorted values at positions 2, 4, 6, 8, i.e. [20, 40, 60, 80], got {_bounds.tolist()}"
_ids = _ints(_layer(np.array([0.0, 19.0, 20.0, 95.0])))
assert _ids == [0, 0, 1, 4], f"with boundaries [20, 40, 60, 80], timestamps 0, 19, 20, 95 belong to buckets [0, 0, 1, 4], got {_ids}"
_ts = train_features["timestamp"].numpy().astype(np.float64)
_ids = _ints(fit_time_buckets(_ts, 10)(_ts))
assert len(_ids) == len(_ts) and min(_ids) >= 0 and max(_ids) <= 9, f"10 buckets on the training split should give one id in 0..9 per timestamp, got {len(_ids)} ids in {min(_ids)}..{max(_ids)}"
_share = [_ids.count(_b) / len(_ids) for _b in range(10)]
assert min(_share) >= 0.05 and max(_share) <= 0.15, f"each of 10 buckets should hold 5%..15% of the ratings, got shares {[round(_s, 3) for _s in _share]}"
print("fit_time_buckets: visible tests passed")
### BEGIN HIDDEN TESTS
_bounds = _plain(fit_time_buckets(np.array([5] * 6 + [7] * 2 + [9] * 2), 5).bin_boundaries)
assert _equal(_bounds, [5.0, 7.0, 9.0]), f"positions 2, 4, 6, 8 of [5]*6 + [7]*2 + [9]*2 hold 5, 5, 7, 9: keep each once, [5, 7, 9]; got {_bounds.tolist()}"
_bounds = _plain(fit_time_buckets(np.arange(11.0)[::-1] * 10, 4).bin_boundaries)
assert _equal(_bounds, [20.0, 50.0, 80.0]), f"11 timestamps 0..100 in 4 buckets: positions 11*i//4 = 2, 5, 8 give [20, 50, 80], got {_bounds.tolist()}"
_sorted = np.sort(_ts)
_expected = np.unique(_sorted[np.arange(1, 7) * len(_sorted) // 7])
_bounds = _plain(fit_time_buckets(_ts, 7).bin_boundaries)
assert _equal(_bounds, _expected), f"7 buckets on the training split: expected boundaries {_expected.tolist()}, got {_bounds.tolist()}"
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
# The day of the week works the same way with a period of 7 days. MovieLens timestamps
# are in UTC, while its users mostly lived in the United States; the library's query
# tower uses UTC, but the users' own clock is easy to recover when their offset is known.
#
# ### Exercise 3 (1 point): local hour of the day on the unit circle
#
# Write `hour_of_day_features(timestamps, utc_offset_hours)` returning, for each Unix
# timestamp, the `float64` pair `[sin, cos]` of its **local** time of day as an angle;
# the local clock is `utc_offset_hours` ahead of UTC (`-6` in Chicago in winter, `5.5`
# in India).
#
# **Hint:** local time is UTC plus the offset; the time of day is what is left after
# removing whole days (modulo).

# %% nbgrader={"grade": false, "grade_id": "hour_of_day_features", "locked": false, "schema_version": 3, "solution": true}
def hour_of_day_features(timestamps: np.ndarray, utc_offset_hours: float) -> np.ndarray:
    """Encode the local time of day of each timestamp as a point on the unit circle.

    Args:
        timestamps: 1-D array of Unix timestamps (seconds, UTC), shape ``(n,)``.
        utc_offset_hours: how many hours the local clock is ahead of UTC (may be
            negative or fractional).

    Returns:
        ``float64`` array of shape ``(n, 2)``: column 0 is ``sin(angle)``, column 1 is
        ``cos(angle)``, where ``angle = 2π · (local seconds since midnight) / 86400``.
        Local midnight is ``[0, 1]`` and local 06:00 is ``[1, 0]``.
    """
    ### BEGIN SOLUTION
    local = np.asarray(timestamps, dtype=np.float64) + utc_offset_hours * 3600.0
    angle = 2.0 * np.pi * np.mod(local, 86_400.0) / 86_400.0
    return np.stack([np.sin(angle), np.cos(angle)], axis=1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_hour_of_day_features", "locked": true, "points": 1, "schema_version": 3, "solution": false}
from movierec.checks import close as _close, plain as _plain
_midnight = 874_800_000 - 874_800_000 % 86_400  # a midnight in UTC
_points = _plain(hour_of_day_features(np.array([_midnight, _midnight + 6 * 3600, _midnight + 86_399]), 0))
assert _points.shape == (3, 2), f"3 timestamps should give an array of shape (3, 2), got {_points.shape}"
assert _close(_points[0], [0.0, 1.0], atol=1e-9), f"midnight should be [sin, cos] = [0, 1], got {_points[0].tolist()}"
assert _close(_points[1], [1.0, 0.0], atol=1e-9), f"06:00 should be [1, 0], got {_points[1].tolist()}"
assert _close(_points[2], _points[0], atol=1e-3), "23:59:59 and the next midnight should be almost the same point"
_central = _plain(hour_of_day_features(np.array([_midnight + 6 * 3600, _midnight]), -6))
assert _close(_central, [[0.0, 1.0], [-1.0, 0.0]], atol=1e-9), f"at UTC-6, 06:00 UTC is local midnight [0, 1] and midnight UTC is local 18:00 [-1, 0]; got {_central.tolist()}"
_three = _plain(hour_of_day_features(np.array([_midnight + 3 * 3600]), 0))[0]
assert _close(_three, [np.sqrt(0.5), np.sqrt(0.5)], rtol=0, atol=1e-12), f"03:00 is 45 degrees: both values sqrt(1/2) to 1e-12 (compute in float64), got {_three.tolist()}"
print("hour_of_day_features: visible tests passed")
### BEGIN HIDDEN TESTS
_train_ts = train_features["timestamp"].numpy()[:1000]
_many = _plain(hour_of_day_features(_train_ts, 2))
assert _close((_many**2).sum(axis=1), 1.0, atol=1e-12), "every point must lie on the unit circle"
assert _close(_many, _plain(hour_of_day_features(_train_ts + 7 * 86_400, 2)), atol=1e-9), "adding whole days must not change the features"
assert _close(_many, _plain(hour_of_day_features(_train_ts, 2 - 24)), atol=1e-9), "an offset of a whole day more or less must not change the features"
_india = _plain(hour_of_day_features(np.array([_midnight + 30 * 60]), 5.5))[0]
assert _close(_india, [1.0, 0.0], atol=1e-9), f"00:30 UTC is 06:00 at UTC+5:30, [1, 0]; got {_india.tolist()} (keep the half hour)"
_noon = _plain(hour_of_day_features(np.array([_midnight + 10 * 3600]), 2))[0]
assert _close(_noon, [0.0, -1.0], atol=1e-9), f"10:00 UTC is local noon at UTC+2, [0, -1]; got {_noon.tolist()}"
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
    circle = hour_of_day_features(train_timestamps[:2000], 0)
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
occupation_lookup.adapt(train_features["user_occupation_text"], batch_size=len(train_features["user_occupation_text"]))
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
# One OOV row lumps all unknown values together. With `num_oov_indices=k` a lookup
# hashes each unknown value to one of the indices `0 … k-1` (always the same one for
# the same value) and numbers the known values from `k`.
#
# ### Exercise 4 (2 points): an id embedding with several OOV rows
#
# Write `make_id_embedding(vocabulary, embedding_dim, num_oov_indices)` returning a
# `tf.keras.Sequential` of a `StringLookup` on `vocabulary` **in the order given** (no
# mask token, `num_oov_indices` OOV indices) and an `Embedding` with one row per index.
#
# **Hint:** the `StringLookup` API page lists the arguments that fix the vocabulary,
# the mask and the OOV indices; the lookup layer can tell you how many rows you need.

# %% nbgrader={"grade": false, "grade_id": "make_id_embedding", "locked": false, "schema_version": 3, "solution": true}
def make_id_embedding(vocabulary: np.ndarray, embedding_dim: int, num_oov_indices: int) -> tf.keras.Sequential:
    """Return ``Sequential([StringLookup, Embedding])`` mapping string ids to vectors.

    Args:
        vocabulary: the distinct known ids (bytes or str), e.g. the training users, in
            the order their indices should follow.
        embedding_dim: length of each embedding vector.
        num_oov_indices: how many OOV indices (and rows) to reserve, at least 1.

    Returns:
        A model mapping a string tensor of shape ``(n,)`` to floats of shape
        ``(n, embedding_dim)``. Its first layer is the ``StringLookup``: ``vocabulary[i]``
        gets index ``num_oov_indices + i``, an unknown id gets one of the OOV indices
        ``0 … num_oov_indices - 1`` (the same one every time), and the ``Embedding`` has
        ``len(vocabulary) + num_oov_indices`` rows.
    """
    ### BEGIN SOLUTION
    lookup = tf.keras.layers.StringLookup(
        vocabulary=np.asarray(vocabulary), mask_token=None, num_oov_indices=num_oov_indices
    )
    return tf.keras.Sequential([lookup, tf.keras.layers.Embedding(lookup.vocabulary_size(), embedding_dim)])
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_make_id_embedding", "locked": true, "points": 2, "schema_version": 3, "solution": false}
from movierec.checks import close as _close, finite as _finite, ints as _ints, plain as _plain
_users = np.unique(train_features["user_id"].numpy())[::-1]  # deliberately not in sorted order
_model = make_id_embedding(_users, 16, 3)
assert isinstance(_model.layers[0], tf.keras.layers.StringLookup), f"the first layer should be a StringLookup, got {type(_model.layers[0]).__name__}"
_ids = tf.constant([_users[0], _users[1], _users[-1], b"no-such-user", b"no-such-user"])
_index = _ints(_model.layers[0](_ids))
assert _index[:3] == [3, 4, 3 + len(_users) - 1], f"with 3 OOV indices, vocabulary[0], [1] and [-1] should get 3, 4 and {3 + len(_users) - 1} (in the order given), got {_index[:3]}"
assert 0 <= _index[3] < 3 and _index[3] == _index[4], f"an unknown id must get one of the OOV indices 0..2, the same each time, got {_index[3:]}"
_emb = [_layer for _layer in _model.layers if isinstance(_layer, tf.keras.layers.Embedding)]
assert len(_emb) == 1 and int(_emb[0].input_dim) == len(_users) + 3, f"the Embedding needs len(vocabulary) + 3 = {len(_users) + 3} rows, one per index"
_vectors = _plain(_model(_ids))
assert _vectors.shape == (5, 16), f"5 ids and embedding_dim=16 should give shape (5, 16), got {_vectors.shape}"
assert _finite(_vectors), "every id, known or not, must get a finite vector"
assert _close(_vectors[3], _vectors[4]), "the same unknown id must get the same vector each time"
assert not _close(_vectors[0], _vectors[3]), "a known id must not get an OOV vector"
print("make_id_embedding: visible tests passed")
### BEGIN HIDDEN TESTS
_all = _ints(_model.layers[0](tf.constant(_users)))
assert _all == list(range(3, len(_users) + 3)), "the known ids should map to 3..len(vocabulary) + 2, in the order given"
_strangers = _ints(make_id_embedding(_users, 4, 4).layers[0](tf.constant([f"stranger-{_i}".encode() for _i in range(200)])))
assert set(_strangers) == {0, 1, 2, 3}, f"200 unknown ids should spread over all 4 OOV indices, got {sorted(set(_strangers))}"
_small = make_id_embedding(np.array(["b", "a"]), 3, 1)
assert _ints(_small.layers[0](tf.constant(["b", "a", "zzz"]))) == [1, 2, 0], "with one OOV index and vocabulary ['b', 'a']: 'b' -> 1, 'a' -> 2, unknown -> 0"
assert tuple(_plain(_small(tf.constant(["a", "zzz"]))).shape) == (2, 3), "should work with str vocabularies and other sizes"
### END HIDDEN TESTS

# %% [markdown]
# How big should an embedding be? A rule of thumb from Google's feature-column guide
# takes about $n^{1/4}$ dimensions for $n$ values, or a few times that: 943 users give
# about 6, so 32 is generous. Small categories (occupations, genres) get 8 here.
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
# only slowly (it is the birthday problem). They hurt less than they look, since other
# features still tell colliding values apart. With a few hundred zip codes a vocabulary
# would do; the hashing trick matters at web scale.
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
# trainable vector) would be averaged in once per padding position. The library's
# candidate tower averages this way.
#
# **Max pooling** keeps, for each dimension, the largest value over the positions. It
# needs the mask too, and zeroing the padding is not enough: a padded 0 beats every
# negative value.
#
# ### Exercise 5 (2 points): masked max pooling
#
# Write `masked_max(vectors, mask)`: for each row and dimension, the maximum over the
# real positions only; a row with no real position gives zeros.
#
# **Hint:** padded positions must never win, whatever the real values are
# (`tf.where`); then decide what the all-padding rows return (`tf.reduce_any`).

# %% nbgrader={"grade": false, "grade_id": "masked_max", "locked": false, "schema_version": 3, "solution": true}
def masked_max(vectors: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Maximum of ``vectors`` over axis 1, counting only positions where ``mask`` is true.

    Args:
        vectors: float tensor of shape ``(batch, length, dim)``.
        mask: bool tensor of shape ``(batch, length)``; ``False`` marks padding.

    Returns:
        Tensor of shape ``(batch, dim)`` and the dtype of ``vectors``. Padded positions
        do not influence the result at all, whatever their values; a row whose mask is
        all ``False`` gives a zero vector.
    """
    ### BEGIN SOLUTION
    keep = tf.cast(mask, tf.bool)[:, :, tf.newaxis]
    lowest = tf.constant(vectors.dtype.min, vectors.dtype)
    best = tf.reduce_max(tf.where(keep, vectors, lowest), axis=1)
    return tf.where(tf.reduce_any(keep, axis=1), best, tf.zeros_like(best))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_masked_max", "locked": true, "points": 2, "schema_version": 3, "solution": false}
from movierec.checks import close as _close, finite as _finite, plain as _plain
_rng = np.random.default_rng(3)
_values = _rng.normal(size=(3, 4, 2))
_vec = tf.constant(_values, tf.float32)
_mask_rows = [[True, True, False, False], [True, True, True, True], [False, False, False, False]]
_mask = tf.constant(_mask_rows)
_out = _plain(masked_max(_vec, _mask))
assert _out.shape == (3, 2), f"(batch=3, length=4, dim=2) should pool to shape (3, 2), got {_out.shape}"
assert _close(_out[0], _values[0, :2].max(axis=0), atol=1e-6), "row 0 should be the maximum of its first two vectors only"
assert _close(_out[1], _values[1].max(axis=0), atol=1e-6), "row 1 (no padding) should be the plain maximum"
assert _finite(_out[2]) and _close(_out[2], 0.0), f"an all-padding row should give zeros; got {_out[2].tolist()}"
_noisy = _values.copy()
_noisy[~np.array(_mask_rows)] = 1e6
assert _close(_plain(masked_max(tf.constant(_noisy, tf.float32), _mask)), _out, atol=1e-4), "the values at padded positions must not change the result"
_neg_values = -np.abs(_values) - 1.0  # every real value is below -1
_neg_out = _plain(masked_max(tf.constant(_neg_values, tf.float32), _mask))
_neg_expected = np.stack([_neg_values[0, :2].max(axis=0), _neg_values[1].max(axis=0)])
assert _close(_neg_out[:2], _neg_expected, atol=1e-6), f"with only negative real values the maximum is negative (a padded 0 must not win); expected {_neg_expected.tolist()}, got {_neg_out[:2].tolist()}"
print("masked_max: visible tests passed")
### BEGIN HIDDEN TESTS
_wide = tf.concat([_vec, tf.constant(_rng.normal(size=(3, 5, 2)), tf.float32)], axis=1)
_wide_mask = tf.concat([_mask, tf.zeros((3, 5), tf.bool)], axis=1)
assert _close(_plain(masked_max(_wide, _wide_mask)), _out, atol=1e-6), "extra padding columns must not change the result"
_far = _plain(masked_max(tf.constant([[[-1e12, -3e12], [0.0, 0.0]]], tf.float64), tf.constant([[True, False]])))
assert _close(_far, [[-1e12, -3e12]], rtol=1e-9), f"real values far below any 'large negative' constant must still win over padding; got {_far.tolist()}"
_typed = masked_max(tf.ones((2, 3, 4), tf.float64), tf.constant([[False, True, False], [False, False, False]]))
assert str(tf.as_dtype(_typed.dtype).name) == "float64", f"keep the dtype of the vectors (float64 in, float64 out), got {_typed.dtype}"
assert _close(_plain(_typed), [[1.0] * 4, [0.0] * 4]), f"expected [[1, 1, 1, 1], [0, 0, 0, 0]], got {_plain(_typed).tolist()}"
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
# **Hint:** the Keras guide "Understanding masking & padding" (in the references) shows
# which layers produce a mask and which consume it; a `Sequential` model passes the mask
# from one layer to the next for you. Ask the vectorizer how many rows the embedding
# needs.

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
from movierec.checks import close as _close, finite as _finite, plain as _plain
_encoder = build_title_encoder(movie_features["movie_title"], 8)
_alone = _plain(_encoder(tf.constant(["Toy Story (1995)"])))
_batch = _plain(_encoder(tf.constant(["Star Wars (1977)", "Toy Story (1995)", "Dr. Strangelove or: How I Learned to Stop Worrying and Love the Bomb (1963)"])))
assert _alone.shape == (1, 8) and _batch.shape == (3, 8), f"expected shapes (1, 8) and (3, 8), got {_alone.shape} and {_batch.shape}"
assert _close(_alone[0], _batch[1], atol=1e-6), "the same title must get the same vector alone and next to a long title: padding must be masked"
_twice = _plain(_encoder(tf.constant(["Fargo (1996)", "Heat (1995)", "Fargo (1996)"])))
assert _close(_twice[0], _twice[2]), "identical titles must get identical embeddings"
assert not _close(_twice[0], _twice[1]), "different titles should get different embeddings"
_masking = [_layer for _layer in _encoder.submodules if isinstance(_layer, tf.keras.layers.Embedding) and _layer.mask_zero]
assert _masking, "the word embedding should be an Embedding with mask_zero=True, so that the pooling sees the padding"
print("build_title_encoder: visible tests passed")
### BEGIN HIDDEN TESTS
_strange = _plain(_encoder(tf.constant(["Qwertyuiop Zxcvbnm", "Heat (1995)"])))
assert _finite(_strange), "titles made of unknown words must still embed (OOV token)"
assert not _close(_strange[0], 0.0), "unknown words map to the OOV token, a real word vector: their average is not zero"
_again = _plain(_encoder(tf.constant(["Heat (1995)"] * 4 + ["a b c d e f g h i j k l m n o p"])))
assert _close(_again[:4], np.repeat(_strange[1:2], 4, axis=0), atol=1e-6), "a title's vector must not depend on how much padding its batch needs"
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
# **Hint:** both `tf.keras.layers.CategoryEncoding` (its `multi_hot` mode) and
# `tf.one_hot` can do it; read on their API pages what each does with an index outside
# its range, such as the padding `-1`, and mind genres listed twice.

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
from movierec.checks import equal as _equal, plain as _plain
_hot = _plain(genres_multi_hot(tf.constant([[0, 3, -1], [2, -1, -1], [-1, -1, -1]], tf.int64), 5))
assert _hot.shape == (3, 5), f"3 movies and 5 genres should give shape (3, 5), got {_hot.shape}"
assert _equal(_hot, [[1, 0, 0, 1, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]]), f"wrong multi-hot rows: {_hot.tolist()} (padding -1 must give nothing)"
_catalogue = _plain(genres_multi_hot(movie_features["movie_genres"], NUM_GENRES))
_lists = movie_features["movie_genres"].numpy()
assert _equal(_catalogue.sum(axis=1), (_lists >= 0).sum(axis=1)), "each movie's row should sum to its number of genres"
print("genres_multi_hot: visible tests passed")
### BEGIN HIDDEN TESTS
_dup = _plain(genres_multi_hot(tf.constant([[1, 1, -1]], tf.int64), 3))
assert _equal(_dup, [[0, 1, 0]]), f"a genre listed twice is still 1.0, got {_dup.tolist()}"
_counts = np.bincount(_lists[_lists >= 0], minlength=NUM_GENRES)
assert _equal(_catalogue.sum(axis=0), _counts), "column sums should count the movies of each genre"
_typed = genres_multi_hot(tf.constant([[4, -1]], tf.int32), 6)
assert tf.as_dtype(_typed.dtype) == tf.float32, f"return float32 (as documented), got {_typed.dtype}"
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
fitted_on_past.adapt(past.astype(np.float64), batch_size=len(past))
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
# projected by a `Dense(embedding_dim)` with no activation, so the output moves linearly
# with the timestamp's z-score. It must ignore any other keys in the batch.
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
            timestamps = train_features["timestamp"].numpy().astype(np.float64)
            self.time_normalizer.adapt(timestamps, batch_size=len(timestamps))
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
from movierec.checks import close as _close, finite as _finite, plain as _plain
_tower = build_user_tower(train_features, 12)
_raw = {name: value[:5] for name, value in train_features.items()}  # every raw feature, as a batch of 5
_raw["movie_genres"] = tf.RaggedTensor.from_tensor(_raw["movie_genres"], padding=GENRE_PAD)  # genres ragged, as from ragged_batch
_out = _plain(_tower(_raw))
assert _out.shape == (5, 12), f"a batch of 5 raw examples should give shape (5, 12), got {_out.shape}"
assert _finite(_out), "the tower output must be finite"
_one = {"user_id": tf.constant([b"1", b"no-such-user"]), "timestamp": tf.constant([880_000_000, 880_000_000], tf.int64),
        "user_occupation_text": tf.constant([b"doctor", b"astronaut"])}
_base = _plain(_tower(_one))
assert _finite(_base), "unknown user ids and occupations must still give a finite vector (and only the three features are needed)"
_later = _plain(_tower(dict(_one, timestamp=tf.constant([890_000_000, 890_000_000], tf.int64))))
assert not _close(_base, _later), "changing only the timestamp should change the output: use it"
_much_later = _plain(_tower(dict(_one, timestamp=tf.constant([900_000_000, 900_000_000], tf.int64))))
assert _close(_much_later - _later, _later - _base, rtol=1e-3, atol=1e-4), "the timestamp enters only as a z-score followed by a linear Dense layer, so equal steps in time must move the output by equal amounts (no buckets, no clock, no activation)"
_other_job = _plain(_tower(dict(_one, user_occupation_text=tf.constant([b"student", b"student"]))))
assert not _close(_base[0], _other_job[0]), "changing only the occupation should change the output: use it"
print("build_user_tower: visible tests passed")
### BEGIN HIDDEN TESTS
_norms = [_layer for _layer in _tower.submodules if isinstance(_layer, tf.keras.layers.Normalization)]
_train_seconds = train_features["timestamp"].numpy().astype(np.float64)
assert any(_close(_plain(_layer.mean).ravel()[:1], _train_seconds.mean(), rtol=1e-6) and _close(_plain(_layer.variance).ravel()[:1], _train_seconds.var(), rtol=1e-3) for _layer in _norms), "use a Normalization layer adapted on the training timestamps"
_other_user = _plain(_tower(dict(_one, user_id=tf.constant([b"2", b"no-such-user"]))))
assert not _close(_base[0], _other_user[0]), "changing only the user id should change the output"
### END HIDDEN TESTS

# %% [markdown]
# ### The library towers
#
# The towers that lessons 04 to 07 use follow the same pattern with all the features of
# this lesson. Three design choices are worth pointing out:
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
# * Statistics are computed with NumPy from the training split and passed to the
#   layers' constructors (`mean=`, `variance=`, `bin_boundaries=`): exact and fast.
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
# Both towers on a small raw batch: one 32-dimensional vector per rating and per movie;
# their dot product is the score that lesson 04 trains to be high for rated movies.

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
