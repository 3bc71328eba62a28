# %% [markdown]
# # Lesson 02 — MovieLens 100k with TFDS and tf.data
#
# Every model in this course learns from the same data: MovieLens 100k, a set of
# 100,000 movie ratings collected by the GroupLens research group at the University of
# Minnesota in 1997–98 (Harper & Konstan, 2015). Before training anything we need to
# know that data well: what a rating looks like, how ratings spread over users, movies
# and time, and how to hold some of them out for an honest test.
#
# In this lesson you will:
#
# * load MovieLens with **TensorFlow Datasets** (TFDS) and see what `tfds.load` returns;
# * learn what a `tf.data.Dataset` is, why it is lazy, and how `take`, `map`, `batch`,
#   `cache` and `prefetch` build a pipeline;
# * go through every feature of a rating and its type;
# * measure the rating distribution and the **long tail** of users and movies;
# * split the ratings three ways — at random, at a global time cutoff, and per user in
#   time — each into train, **validation** and test, and see which ones leak the future;
# * build the vocabularies of user ids and movie titles, and find the 18 titles that
#   name two different movie ids.
#
# The functions in the cells tagged `export` become the library module
# `movierec.dataset`, which the later lessons import. The six exercises are different,
# smaller tasks; each has a test cell right below it.

# %% tags=["setup"]
from movierec.setup import setup_lesson

setup_lesson()

# %% [markdown]
# ## 1. One call to TensorFlow Datasets
#
# TFDS is a catalogue of public datasets behind a single function. `tfds.load(name)`
# looks for prepared files in its data directory (`~/tensorflow_datasets`, or wherever
# the `TFDS_DATA_DIR` environment variable points), downloads and converts the raw data
# the first time if they are missing, and hands back the records as a
# `tf.data.Dataset`.
#
# A dataset name can carry a *configuration* after the slash. MovieLens comes in several
# sizes, and each size has two configurations:
#
# * `movielens/100k-ratings`: one record per rating, with the user's and the movie's
#   features copied into it;
# * `movielens/100k-movies`: one record per movie, the catalogue of candidates.
#
# The `split` argument picks which part of the data to read. Many datasets ship
# `"train"` and `"test"` splits; MovieLens ships only `"train"`, and it holds *all* the
# ratings. Splitting them for evaluation is our job, and section 6 shows that the way we
# do it matters. Split strings also accept slices such as `"train[:80%]"`, which cut
# the records in the order TFDS stored them (a fixed order scrambled when the files
# were prepared). We will not use them: section 6 makes the split explicit, with a
# documented seed, or by time.
#
# With `with_info=True`, `tfds.load` also returns a `DatasetInfo`: the feature
# specification, the number of records per split, the homepage and the citation.
#
# The two loading calls are wrapped in functions so that every lesson reads the data the
# same way. Passing `shuffle_files=False` (the default, spelled out here) keeps the
# records in the order they are stored, which the seeded random split of section 6
# relies on.

# %% tags=["export"]
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

RATINGS_NAME = "movielens/100k-ratings"
MOVIES_NAME = "movielens/100k-movies"


def load_ratings() -> tf.data.Dataset:
    """All 100,000 MovieLens 100k ratings, one dict of features per rating.

    TFDS stores every rating in its single ``"train"`` split; making a train/test split
    is left to :func:`random_split`, :func:`temporal_split` or :func:`user_temporal_split`. The file order is kept
    (``shuffle_files=False``) so that seeded shuffles downstream repeat exactly.
    """
    return tfds.load(RATINGS_NAME, split="train", shuffle_files=False)


def load_movies() -> tf.data.Dataset:
    """The 1,682 movies of MovieLens 100k: ``movie_id``, ``movie_title``, ``movie_genres``.

    This is the candidate catalogue: every movie appears once, whether or not it was
    rated often, which is what a retrieval model must be able to recommend from.
    """
    return tfds.load(MOVIES_NAME, split="train", shuffle_files=False)


# %% [markdown]
# Loading with `with_info=True` shows what TFDS knows about the ratings before we read
# any of them:

# %%
import datetime

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter, ScalarFormatter

from movierec.report import record

_, info = tfds.load("movielens/100k-ratings", split="train", with_info=True)
print("splits:  ", {name: split.num_examples for name, split in info.splits.items()})
print("features:", info.features)

# %% [markdown]
# ## 2. What a `tf.data.Dataset` is
#
# A `tf.data.Dataset` is not a table in memory. It is a *description of a pipeline*:
# where records come from (here, a TFRecord file) and which steps transform them. No
# record is read until something iterates over the dataset, for instance a `for` loop
# or `model.fit`. Building a pipeline is therefore instant, whatever the size of the
# data, and a pipeline can be iterated again and again, re-reading from the source each
# time unless it is cached.
#
# Two attributes describe a dataset without reading it:
#
# * `element_spec` gives the structure, dtype and shape of one element;
# * `cardinality()` gives the number of elements when TFDS or the pipeline knows it
#   (and `-2`, "unknown", after steps such as `filter` that cannot know it in advance).

# %%
ratings = load_ratings()
movies = load_movies()
num_ratings = int(ratings.cardinality())
num_movies = int(movies.cardinality())
record("dataset.num_ratings", num_ratings)
record("dataset.num_movies", num_movies)
for name, spec in ratings.element_spec.items():
    print(f"{name:<22} {spec.dtype.name:<7} shape={spec.shape}")

# %% [markdown]
# Every element is a dictionary of scalar tensors, except `movie_genres`, whose shape
# `(None,)` says it is a list whose length varies from movie to movie. That one
# feature will matter in section 4.
#
# `take(n)` builds a new dataset with only the first `n` elements; iterating over it
# reads just those. Here is the first rating in the file:

# %%
first = next(iter(ratings.take(1)))
for name, value in first.items():
    print(f"{name:<22} {value.dtype.name:<7} {value.numpy()}")

# %% [markdown]
# Strings come back as Python `bytes` (`b'138'`), not `str`: TensorFlow strings are
# byte strings, and ids stay bytes throughout the course. Call `.decode()` when you want
# to print one nicely.
#
# ### Laziness, seen from the inside
#
# `map(fn)` adds a step that applies `fn` to every element. TensorFlow does not call the
# Python function once per element: it calls it **once**, with symbolic tensors (no
# values yet), to trace a graph, and then runs that graph for every element, in C++
# and possibly in parallel. The cell below makes this visible. The Python function
# records each call in a list; we build a three-element pipeline, then iterate over it.

# %%
python_calls = []


def doubled_rating(example: dict) -> tf.Tensor:
    python_calls.append(example["user_rating"])  # runs only while tracing
    return 2.0 * example["user_rating"]


doubled = ratings.take(3).map(doubled_rating)
print("after building: Python function called", len(python_calls), "time(s) with", python_calls)
results = [float(x) for x in doubled]
print("after iterating:", results, "- Python function still called", len(python_calls), "time(s)")

# %% [markdown]
# The only call received a symbolic `Tensor` with a shape and a dtype but no value;
# the three results were computed by the traced graph. Reading nothing but metadata,
# building the pipeline was instant; the records were read only by the loop.
#
# **Pitfall:** because `fn` becomes a graph, it cannot call `.numpy()`, use Python `if`
# on tensor values, or collect values into Python lists (as the list above shows, it
# would see a single symbolic tensor). Write it with TensorFlow operations (`tf.where`,
# `tf.cast`, arithmetic) and dictionary lookups.

# %% [markdown]
# ## 3. The features of a rating
#
# The table lists every feature of `movielens/100k-ratings`. The dtype is what
# `element_spec` reports; the values are those of this dataset.
#
# | feature | dtype, shape | meaning |
# | --- | --- | --- |
# | `user_id` | `string`, scalar | id of the rater, `b"1"` … `b"943"` |
# | `movie_id` | `string`, scalar | id of the movie, `b"1"` … `b"1682"` |
# | `movie_title` | `string`, scalar | title with the release year, e.g. `b"Toy Story (1995)"` |
# | `movie_genres` | `int64`, list of varying length | genre labels (`ClassLabel`, 21 names); a movie can have several |
# | `user_rating` | `float32`, scalar | stars, whole numbers from 1 to 5 |
# | `timestamp` | `int64`, scalar | when the rating was entered, in seconds since 1970-01-01 UTC |
# | `bucketized_user_age` | `float32`, scalar | lower end of the user's age bracket: 1 (under 18), 18, 25, 35, 45, 50, 56 |
# | `raw_user_age` | `float32`, scalar | the user's age in years |
# | `user_gender` | `bool`, scalar | `True` for users who registered as male |
# | `user_occupation_label` | `int64`, scalar | occupation as a `ClassLabel` (22 names, shared with MovieLens 1M) |
# | `user_occupation_text` | `string`, scalar | occupation as the user chose it, e.g. `b"doctor"` |
# | `user_zip_code` | `string`, scalar | zip code; 17 users have Canadian-style codes such as `b"T8H1N"` |
#
# Everything about a user and a movie is repeated in each of their ratings: the table is
# *denormalised*. That costs space but means a single record carries all the features a
# model may want. The `ClassLabel` features store integers; the `DatasetInfo` knows the
# names behind them.

# %%
genre_names = info.features["movie_genres"].feature.names
occupation_names = info.features["user_occupation_label"].names
print("genres of the first rating:", [genre_names[g] for g in first["movie_genres"].numpy()])
print("occupation label", int(first["user_occupation_label"]), "=", occupation_names[int(first["user_occupation_label"])])
print(f"{len(genre_names)} genre names, {len(occupation_names)} occupation names")

# %% [markdown]
# The movies configuration is the same idea, shorter: `movie_id`, `movie_title` and
# `movie_genres`, one record per movie.

# %%
print({name: f"{spec.dtype.name} {spec.shape}" for name, spec in movies.element_spec.items()})

# %% [markdown]
# ## 4. Building pipelines: `map`, `batch`, `cache`, `prefetch`
#
# A pipeline is a chain of transformations, each returning a new dataset:
#
# * **`map(fn)`** transforms every element; `num_parallel_calls=tf.data.AUTOTUNE` lets
#   tf.data run it on several cores.
# * **`batch(n)`** stacks `n` consecutive elements into one element whose tensors gain a
#   leading dimension of size `n` (the last batch may be smaller). Models train on
#   batches, and even plain statistics are much faster batch by batch than element by
#   element, because each step of a pipeline has a fixed cost per element.
# * **`cache()`** keeps the elements in memory (or in a file, with `cache(path)`) the
#   first time they are produced; later passes read from the cache instead of
#   re-reading and re-parsing the TFRecord file.
# * **`prefetch(tf.data.AUTOTUNE)`** lets the pipeline prepare the next elements while
#   the consumer (your loop, or the model) is busy with the current one.
#
# The usual order is: select and transform with `map`, then `cache` the small result,
# then shuffle, `batch` and `prefetch` last. `batch` needs every element of a batch to
# have the same shape, and `movie_genres` does not, so batching the raw ratings fails:

# %%
try:
    next(iter(ratings.batch(256)))
except tf.errors.InvalidArgumentError as err:
    message = str(err)
    print("batch failed:", message[message.find("Cannot batch") :].split(" [Op")[0])

# %% [markdown]
# There are two ways out. `ragged_batch` stacks lists of different lengths into a
# `tf.RaggedTensor`. Usually simpler: drop the features you do not need before batching,
# with a `map` that returns a smaller dictionary. That is **feature selection**, and it
# also saves memory and time in every later step. With only scalar features left,
# batches stack cleanly, and each batch converts to NumPy in one call:

# %%
user_and_rating = ratings.map(lambda example: {"user_id": example["user_id"], "user_rating": example["user_rating"]})
small_batch = next(iter(user_and_rating.batch(8)))
print("user_id:    ", small_batch["user_id"].numpy())
print("user_rating:", small_batch["user_rating"].numpy(), "- mean", np.mean(small_batch["user_rating"].numpy()))

# %% [markdown]
# ### Exercise 1 (1 point): select features
#
# Write `select_features(example)` for use in `ratings.map(select_features)`. It keeps
# the four features a first retrieval model needs: `user_id`, `movie_title`,
# `user_rating` and `timestamp`.
#
# **Hint:** a dictionary comprehension over a tuple of key names is all it takes. Do not
# convert anything: return the input tensors as they are.

# %% nbgrader={"grade": false, "grade_id": "select_features", "locked": false, "schema_version": 3, "solution": true}
def select_features(example: dict) -> dict:
    """Keep only ``user_id``, ``movie_title``, ``user_rating`` and ``timestamp``.

    Args:
        example: one rating as produced by :func:`load_ratings` (a dict of tensors).

    Returns:
        A new dict with exactly those four keys, each mapped to the *same* tensor as in
        ``example`` (same dtype, same value). It must work both eagerly and inside
        ``Dataset.map``, and the result must be batchable (no ``movie_genres``).
    """
    ### BEGIN SOLUTION
    keep = ("user_id", "movie_title", "user_rating", "timestamp")
    return {key: example[key] for key in keep}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_select_features", "locked": true, "points": 1, "schema_version": 3, "solution": false}
from movierec.checks import close as _close, number as _number, plain_value as _plain_value
_keys = {"user_id", "movie_title", "user_rating", "timestamp"}
_raw = next(iter(ratings.take(1)))
_out = select_features(_raw)
assert type(_out) is dict, f"select_features should return a plain dict, got {type(_out).__name__}"
assert set(_out) == _keys, f"expected exactly the keys {sorted(_keys)}, got {sorted(_out)}"
for _key in _keys:
    assert _plain_value(_out[_key].dtype.name) == _raw[_key].dtype.name, f"{_key}: dtype changed from {_raw[_key].dtype.name} to {_out[_key].dtype.name}; return the tensor unchanged"
    assert _plain_value(_out[_key].numpy()) == _plain_value(_raw[_key].numpy()), f"{_key}: value {_out[_key].numpy()!r} differs from the input {_raw[_key].numpy()!r}"
_spec = ratings.map(select_features).element_spec
assert set(_spec) == _keys, f"inside Dataset.map the element keys should be {sorted(_keys)}, got {sorted(_spec)}"
print("select_features: visible tests passed")
### BEGIN HIDDEN TESTS
_batch = next(iter(ratings.take(200).map(select_features).batch(200)))
_expected = {key: [] for key in _keys}
for _example in ratings.take(200):
    for _key in _keys:
        _expected[_key].append(_example[_key])
for _key in _keys:
    assert _batch[_key].shape == (200,), f"{_key}: a batch of 200 should have shape (200,), got {_batch[_key].shape}"
    assert _plain_value(_batch[_key].numpy()) == _plain_value(tf.stack(_expected[_key]).numpy()), f"{_key}: values after map+batch differ from the raw examples"
assert "movie_genres" not in _batch, "movie_genres must be dropped"
### END HIDDEN TESTS

# %% [markdown]
# For the analysis in this lesson we keep one more feature, `movie_id`, and cache the
# slimmed records. The first pass over `analysis` reads and parses the TFRecord file
# (a few seconds); every later pass reads the cache.
#
# Most statistics are easiest in NumPy, so we also pull the five features out as
# NumPy arrays, one batch at a time. `to_numpy` is exported too: later lessons use it
# whenever they need a feature as an array.

# %% tags=["export"]
import numpy as np
import tensorflow as tf


def _all_scalar(dataset: tf.data.Dataset) -> bool:
    """True when every feature of a dict-structured element is a scalar tensor."""
    return all(isinstance(spec, tf.TensorSpec) and spec.shape.rank == 0 for spec in dataset.element_spec.values())


def to_numpy(
    dataset: tf.data.Dataset,
    keys: list[str] | tuple[str, ...],
    batch_size: int = 10_000,
) -> dict[str, np.ndarray]:
    """Read scalar features of a dataset of dicts into NumPy arrays, one per key.

    The dataset is read in batches of ``batch_size``, far faster than a loop over single
    elements. If some feature of the element is not a scalar (``movie_genres`` is a list
    of varying length), batching would fail, so the elements are first reduced to
    ``keys`` with a ``map``; when every feature is a scalar, that per-element step is
    skipped and the keys are picked from whole batches instead, which is several times
    cheaper. String features come back as ``object`` arrays of ``bytes``. The arrays
    keep the dataset's element order, so they line up with each other.

    Raises:
        ValueError: if a key is missing or is not a scalar per element.
    """
    keys = tuple(keys)
    if not isinstance(dataset.element_spec, dict):
        raise ValueError("to_numpy expects a dataset whose elements are dicts of features")
    for key in keys:
        if key not in dataset.element_spec:
            raise ValueError(f"feature {key!r} is not in the dataset; it has {sorted(dataset.element_spec)}")
        if dataset.element_spec[key].shape.rank != 0:
            raise ValueError(f"feature {key!r} is not a scalar per element, so it cannot become a flat array")
    if not _all_scalar(dataset):
        dataset = dataset.map(lambda example: {key: example[key] for key in keys})
    parts: dict[str, list[np.ndarray]] = {key: [] for key in keys}
    for batch in dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE):
        for key in keys:
            parts[key].append(batch[key].numpy())
    return {key: np.concatenate(chunks) if chunks else np.array([]) for key, chunks in parts.items()}


# %%
ANALYSIS_KEYS = ("user_id", "movie_id", "movie_title", "user_rating", "timestamp")
analysis = ratings.map(
    lambda example: {key: example[key] for key in ANALYSIS_KEYS},
    num_parallel_calls=tf.data.AUTOTUNE,
).cache()
columns = to_numpy(analysis, ANALYSIS_KEYS)
print({key: (values.dtype, values.shape) for key, values in columns.items()})

# %% [markdown]
# ## 5. Exploring the ratings
#
# ### Reducing a dataset
#
# `Dataset.reduce(initial_state, fn)` folds a whole dataset into one value, inside the
# graph: `fn(state, element)` returns the next state. Reducing over *batches* instead of
# single elements does the same work with a hundred times fewer steps. Here is the mean
# rating computed that way; the state is a pair (sum of ratings, number of ratings),
# and it agrees with NumPy on the arrays we just read.

# %%
def add_batch(state: tuple[tf.Tensor, tf.Tensor], batch: dict) -> tuple[tf.Tensor, tf.Tensor]:
    total, count = state
    stars = tf.cast(batch["user_rating"], tf.float64)
    return total + tf.reduce_sum(stars), count + tf.size(stars, out_type=tf.int64)


total, count = analysis.batch(10_000).reduce((tf.constant(0.0, tf.float64), tf.constant(0, tf.int64)), add_batch)
mean_rating = float(total / tf.cast(count, tf.float64))
assert np.isclose(mean_rating, columns["user_rating"].mean())
record("dataset.mean_rating", mean_rating)

# %% [markdown]
# ### Exercise 2 (2 points): a rating histogram with `reduce`
#
# Count how many ratings have each number of stars, with `Dataset.reduce`, so that the
# ratings never have to be collected into one array.
#
# **Hint:** keep only the rating (`map`), `batch` it, and use a state of shape `(6,)`:
# entry $s$ counts the ratings with $s$ stars (entry 0 stays unused).
# `tf.math.bincount(values, minlength=6, maxlength=6, dtype=tf.int64)` counts the
# integers in a batch. At the end, keep only the star values that occur, as plain
# Python numbers.

# %% nbgrader={"grade": false, "grade_id": "rating_histogram", "locked": false, "schema_version": 3, "solution": true}
def rating_histogram(ratings: tf.data.Dataset) -> dict[float, int]:
    """Count the ratings per number of stars, using ``Dataset.reduce``.

    Args:
        ratings: a dataset of dicts with at least a float ``user_rating`` holding whole
            stars from 1 to 5. Elements may carry other features, including
            variable-length ones such as ``movie_genres``.

    Returns:
        ``{stars: count}`` with a plain Python ``float`` key (``1.0`` … ``5.0``) and a
        plain ``int`` count for every star value that occurs at least once, in
        increasing order of stars. Values that never occur are left out.
    """
    ### BEGIN SOLUTION
    stars = ratings.map(lambda example: tf.cast(example["user_rating"], tf.int32))

    def add_counts(counts: tf.Tensor, batch: tf.Tensor) -> tf.Tensor:
        return counts + tf.math.bincount(batch, minlength=6, maxlength=6, dtype=tf.int64)

    counts = stars.batch(10_000).reduce(tf.zeros([6], tf.int64), add_counts).numpy()
    return {float(value): int(n) for value, n in enumerate(counts) if n > 0}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_rating_histogram", "locked": true, "points": 2, "schema_version": 3, "solution": false}
from movierec.checks import close as _close, number as _number, plain_value as _plain_value
_hist = rating_histogram(analysis)
assert type(_hist) is dict, f"rating_histogram should return a plain dict, got {type(_hist).__name__}"
assert all(type(k) is float for k in _hist), f"keys should be plain Python floats (use float(...)), got {[type(k).__name__ for k in _hist]}"
assert all(type(v) is int for v in _hist.values()), f"counts should be plain Python ints (use int(...)), got {[type(v).__name__ for v in _hist.values()]}"
assert sum(_plain_value(_hist).values()) == num_ratings, f"counts should add up to {num_ratings} ratings, got {sum(_hist.values())}"
assert list(_plain_value(_hist)) == [1.0, 2.0, 3.0, 4.0, 5.0], f"expected keys 1.0 ... 5.0 in increasing order, got {list(_hist)}"
_values, _counts = np.unique(columns["user_rating"], return_counts=True)
assert _plain_value(_hist) == {float(v): int(c) for v, c in zip(_values, _counts, strict=True)}, "counts disagree with np.unique on the same ratings"
print("rating_histogram: visible tests passed")
### BEGIN HIDDEN TESTS
_toy = tf.data.Dataset.from_tensor_slices({"user_rating": tf.constant([5.0, 3.0, 5.0]), "user_id": tf.constant([b"a", b"b", b"c"])})
assert _plain_value(rating_histogram(_toy)) == {3.0: 1, 5.0: 2}, f"on ratings [5, 3, 5] expected {{3.0: 1, 5.0: 2}}, got {rating_histogram(_toy)}"
_raw_hist = rating_histogram(ratings.take(3000))  # raw elements still carry movie_genres
_values, _counts = np.unique(columns["user_rating"][:3000], return_counts=True)
assert _plain_value(_raw_hist) == {float(v): int(c) for v, c in zip(_values, _counts, strict=True)}, "on raw ratings (with movie_genres) the counts are wrong; select the rating before batching"
### END HIDDEN TESTS

# %% [markdown]
# The histogram below uses NumPy on the same ratings. It is far from symmetric: 4 stars
# is the most common rating, and most ratings are 4 or 5 stars. People mostly rate
# what they chose to watch, and they choose films they expect to like, so the ratings
# we observe are a biased sample of all possible (user, movie) opinions.

# %%
stars, star_counts = np.unique(columns["user_rating"], return_counts=True)
share_4_or_5 = float(np.mean(columns["user_rating"] >= 4))
record("dataset.share_4_or_5_stars", share_4_or_5)
fig, ax = plt.subplots()
ax.bar(stars, star_counts, color="tab:blue")
ax.axvline(mean_rating, color="black", linestyle="--", label=f"mean = {mean_rating:.2f}")
ax.set(title="MovieLens 100k: ratings per number of stars", xlabel="stars", ylabel="number of ratings")
ax.legend()
plt.show()

# %% [markdown]
# ### The long tail
#
# How are the ratings spread over users and movies? Count the ratings of each user and
# each movie, sort the counts from largest to smallest and plot them. Both curves fall
# steeply, so a logarithmic vertical axis is the only way to see their whole range.

# %%
_, ratings_per_user = np.unique(columns["user_id"], return_counts=True)
_, ratings_per_movie = np.unique(columns["movie_id"], return_counts=True)
record("dataset.min_ratings_per_user", int(ratings_per_user.min()))
record("dataset.median_ratings_per_user", float(np.median(ratings_per_user)))
record("dataset.max_ratings_per_user", int(ratings_per_user.max()))
record("dataset.max_ratings_per_movie", int(ratings_per_movie.max()))
record("dataset.movies_with_one_rating", int(np.sum(ratings_per_movie == 1)))

panels = [
    (ratings_per_movie, "Ratings per movie, most rated first", "movie rank"),
    (ratings_per_user, "Ratings per user, most active first", "user rank"),
]
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for ax, (counts, title, xlabel) in zip(axes, panels, strict=True):
    ax.plot(np.arange(1, len(counts) + 1), np.sort(counts)[::-1])
    ax.set_yscale("log")
    ax.set_yticks([t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if counts.min() <= t <= 1.1 * counts.max()])
    ax.yaxis.set_major_formatter(ScalarFormatter())  # plain numbers instead of 10^k
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set(title=title, xlabel=xlabel, ylabel="number of ratings (log scale)")
    ax.grid(True, which="both", alpha=0.3)
plt.tight_layout()
plt.show()

# %% [markdown]
# Every user has at least 20 ratings: GroupLens only kept users with that many
# (Harper & Konstan, 2015), so there are no users with a single rating in this dataset.
# The median user has about 65, and the most active user has several hundred. Movies
# are much more unequal: the most rated movie has several hundred ratings, while over a
# hundred movies were rated exactly once. Most movies live in the **tail**: a model sees
# few examples of them, learns poor embeddings for them, and will rarely recommend them,
# which in turn keeps them rare.
#
# ### Exercise 3 (1 point): how heavy is the head?
#
# One number summarises the imbalance: the share of all ratings that go to the most
# popular fraction of items. If ratings were spread evenly, the top 10% of movies would
# get 10% of the ratings.
#
# **Hint:** sort the counts in decreasing order (`np.sort(counts)[::-1]`), take the
# first $k = \lceil \text{fraction} \cdot n \rceil$ of them and divide their sum by the
# total. Floating point can make `0.3 * 10` slightly larger than 3, so round the
# product (e.g. to 9 decimals) before taking the ceiling.

# %% nbgrader={"grade": false, "grade_id": "top_share", "locked": false, "schema_version": 3, "solution": true}
def top_share(counts: np.ndarray, fraction: float) -> float:
    """Share of all ratings that the most-rated ``fraction`` of items receive.

    Args:
        counts: 1-d array-like of non-negative counts, one per item, in any order, with
            a positive total.
        fraction: in ``(0, 1]``. The top ``k = ceil(fraction * n)`` items are used
            (``n = len(counts)``), so any positive fraction covers at least one item.

    Returns:
        ``sum of the k largest counts / sum of all counts``, a float in ``[0, 1]``
        (exactly ``1.0`` for ``fraction=1``).

    Raises:
        ValueError: if ``fraction`` is not in ``(0, 1]``.
    """
    ### BEGIN SOLUTION
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    ordered = np.sort(np.asarray(counts, dtype=np.float64))[::-1]
    k = max(1, int(np.ceil(round(fraction * len(ordered), 9))))
    return float(ordered[:k].sum() / ordered.sum())
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_top_share", "locked": true, "points": 1, "schema_version": 3, "solution": false}
from movierec.checks import close as _close, number as _number, plain_value as _plain_value
_share = top_share(np.array([1, 5, 1, 3]), 0.5)
assert isinstance(_share, float), f"top_share should return a float, got {type(_share).__name__}"
assert _close(_share, 0.8), f"for counts [1, 5, 1, 3] the top half (5 and 3) has 8 of 10 ratings, so 0.8; got {_share}"
assert _close(top_share(np.array([2, 2, 2, 2]), 1.0), 1.0), "fraction=1 covers every item, so the share is 1.0"
_, _per_movie = np.unique(columns["movie_id"], return_counts=True)
_s10 = _number(top_share(_per_movie, 0.1))
assert 0.1 < _s10 < 1.0, f"on MovieLens the top 10% of movies get more than 10% (but not all) of the ratings; got {_s10}"
assert _number(top_share(_per_movie, 0.05)) <= _s10 <= _number(top_share(_per_movie, 0.2)), "the share must grow with the fraction"
print("top_share: visible tests passed")
### BEGIN HIDDEN TESTS
assert _close(top_share(np.ones(10), 0.25), 0.3), "ceil(0.25 * 10) = 3 items of 10 equal ones: 0.3"
assert _close(top_share(np.ones(10), 0.3), 0.3), "0.3 * 10 is 3 items (round before the ceiling): 0.3"
assert _close(top_share([7, 1, 2], 0.01), 0.7), "a tiny fraction still keeps one item (the largest), and lists are accepted"
_rng = np.random.default_rng(3)
_c = _rng.integers(0, 50, size=137)
_k = int(np.ceil(0.1 * 137))
assert _close(top_share(_c, 0.1), float(np.sort(_c)[-_k:].sum() / _c.sum())), "top_share disagrees with the sum of the largest ceil(0.1 n) counts"
for _bad in (0.0, -0.1, 1.5):
    try:
        top_share(_c, _bad)
    except ValueError:
        pass
    else:
        raise AssertionError(f"fraction={_bad} is outside (0, 1] and should raise ValueError")
### END HIDDEN TESTS

# %% [markdown]
# On MovieLens:

# %%
top10_movie_share = record("dataset.top10_movie_share", top_share(ratings_per_movie, 0.1))
top10_user_share = record("dataset.top10_user_share", top_share(ratings_per_user, 0.1))

# %% [markdown]
# The most-rated 10% of movies collect over 40% of all ratings, more than four times
# their "fair" share. For users the imbalance is smaller (the most active 10% of users
# wrote about a third of the ratings), partly because every user has at least 20.
# A recommender that just returns the most popular films would already look decent on
# such data, so "recommend the most popular movies" is the first baseline any model
# has to beat.

# %% [markdown]
# ## 6. Splitting into train, validation and test
#
# To estimate how a model will do on ratings it has not seen, we hold some ratings out
# as a **test set** and train only on the rest. The question is *which* ratings to hold
# out.
#
# ### A random split
#
# The simplest answer is a uniform random sample: shuffle all ratings and cut. The
# TensorFlow Recommenders retrieval tutorial does exactly this with 80,000 training and
# 20,000 test ratings, and we reproduce its recipe so our numbers can be compared with
# it:
#
# 1. `tf.random.set_seed(seed)`;
# 2. `ratings.shuffle(100_000, seed=seed, reshuffle_each_iteration=False)`;
# 3. the first 80,000 shuffled ratings are the training set, the next 20,000 the test
#    set.
#
# Three details make it correct:
#
# * The buffer holds all 100,000 ratings, so the shuffle is a uniform permutation. With
#   a smaller buffer, `shuffle` only mixes nearby records and the split would largely
#   follow the file order.
# * `reshuffle_each_iteration=False` makes every pass produce the *same* permutation.
#   The training and test sets are two views (`take` and `skip`) of one shuffled
#   stream, and each is re-read from the start on every pass; if the permutation changed
#   between passes, the test set of one epoch would contain ratings from the training
#   set of another.
# * The order produced by a seeded op in TensorFlow depends on two seeds: the op's
#   own seed and the **global** seed. Setting only `seed=42` on `shuffle` is not
#   enough; a lesson that set a different global seed earlier would get a different
#   split. So the function sets the global seed first. That is a side effect: random
#   ops created afterwards (e.g. weight initialisers) start from this seed, which is
#   harmless in a lesson that seeds everything anyway, but worth knowing.
#
# The global seed really does change the order. Same op seed, two global seeds, first
# five users of the shuffled stream:

# %%
def first_shuffled_users(global_seed: int, n: int = 5) -> list[str]:
    tf.random.set_seed(global_seed)
    shuffled = analysis.shuffle(100_000, seed=42, reshuffle_each_iteration=False)
    return [user.decode() for user in to_numpy(shuffled.take(n), ("user_id",))["user_id"]]


print("global seed 42:", first_shuffled_users(42))
print("global seed 7: ", first_shuffled_users(7))

# %% [markdown]
# ### A third part: validation
#
# A test set answers one question once: how good is the model we *finished*. Every
# choice made on the way — how many epochs, which learning rate, which features, which
# of two models to keep — needs held-out data too, and if those choices are made on the
# test set, the test score is no longer an estimate of anything: we picked whatever
# happened to do well on those 20,000 ratings. So the course holds out a **validation
# set** as well and follows one rule from here on:
#
# * training curves, early stopping, settings and model choices use **validation**;
# * the **test** set is read once per model, for the final table.
#
# To keep the test set identical to the tutorial's, `random_split` carves the validation
# set out of the tutorial's 80,000 training ratings: the last 8,000 of them, in the
# shuffled order, so training keeps the first 72,000. (Putting the 8,000 back,
# `train.concatenate(validation)`, gives the tutorial's training set exactly.) The
# function resets the global seed itself, so the cell above does not disturb it.

# %% tags=["export"]
import numpy as np
import tensorflow as tf


def _keep_labelled(ratings: tf.data.Dataset, labels: np.ndarray, wanted: int) -> tf.data.Dataset:
    """The elements of ``ratings`` whose entry in ``labels`` (aligned with the element order) is ``wanted``.

    When every feature is a scalar the selection runs on batches of 1,024
    (``boolean_mask``, then ``unbatch``), several times cheaper than ``filter``, which
    calls its predicate once per element. The input order is kept.
    """
    tagged = tf.data.Dataset.zip((ratings, tf.data.Dataset.from_tensor_slices(np.asarray(labels, dtype=np.int8))))
    if _all_scalar(ratings):

        def select(batch: dict, label: tf.Tensor) -> dict:
            mask = tf.equal(label, wanted)
            return {key: tf.boolean_mask(value, mask) for key, value in batch.items()}

        return tagged.batch(1024).map(select).unbatch()

    def is_wanted(example: dict, label: tf.Tensor) -> tf.Tensor:
        return tf.equal(label, wanted)

    def drop_label(example: dict, label: tf.Tensor) -> dict:
        return example

    return tagged.filter(is_wanted).map(drop_label)


def random_split(
    ratings: tf.data.Dataset,
    *,
    seed: int = 42,
    train_size: int = 80_000,
    test_size: int = 20_000,
    validation_size: int = 8_000,
) -> tuple[tf.data.Dataset, tf.data.Dataset, tf.data.Dataset]:
    """Shuffle all ratings once with a fixed seed and cut them into (train, validation, test).

    The test set is exactly the one of the TensorFlow Recommenders basic retrieval
    tutorial, so results are comparable with it: set the global seed, shuffle with a
    buffer of 100,000 (the whole dataset, hence a uniform permutation) and the same op
    seed, take the first ``train_size`` ratings as the tutorial's training part and the
    next ``test_size`` as the test set. The **last** ``validation_size`` ratings of the
    training part become the validation set, for every choice a lesson makes (epochs,
    settings, which model is best); training uses the first
    ``train_size - validation_size``. ``train.concatenate(validation)`` is the
    tutorial's training set, in the same order.

    Side effect: calls ``tf.random.set_seed(seed)``. A shuffle's order depends on the
    global seed as well as on its own ``seed``, so without this the split would change
    with whatever global seed the caller happened to set before.

    ``reshuffle_each_iteration=False`` gives the same order on every pass, so the three
    returned datasets stay disjoint however many times each is iterated. Each pass
    re-runs the shuffle over the whole input; cache the input (or the outputs) if
    reading it is slow.

    Raises:
        ValueError: if ``validation_size`` is negative or not smaller than ``train_size``.
    """
    if not 0 <= validation_size < train_size:
        raise ValueError(f"validation_size must be in [0, train_size), got {validation_size}")
    tf.random.set_seed(seed)
    shuffled = ratings.shuffle(100_000, seed=seed, reshuffle_each_iteration=False)
    train = shuffled.take(train_size - validation_size)
    validation = shuffled.skip(train_size - validation_size).take(validation_size)
    test = shuffled.skip(train_size).take(test_size)
    return train, validation, test


# %%
SPLIT_KEYS = ("user_id", "movie_title", "timestamp")
random_train, random_validation, random_test = random_split(analysis)
random_cols = {name: to_numpy(part, SPLIT_KEYS)
               for name, part in (("train", random_train), ("validation", random_validation), ("test", random_test))}
train_size = record("dataset.train_size", len(random_cols["train"]["timestamp"]))
validation_size = record("dataset.validation_size", len(random_cols["validation"]["timestamp"]))
test_size = record("dataset.test_size", len(random_cols["test"]["timestamp"]))
assert (train_size, validation_size, test_size) == (72_000, 8_000, 20_000)
tf.random.set_seed(42)  # the tutorial's recipe, written out: its test set is ours
_tutorial_test = to_numpy(analysis.shuffle(100_000, seed=42, reshuffle_each_iteration=False).skip(80_000), SPLIT_KEYS)
assert all(np.array_equal(_tutorial_test[key], random_cols["test"][key]) for key in SPLIT_KEYS)
print("first training users:", random_cols["train"]["user_id"][:5])

# %% [markdown]
# ### A temporal split
#
# A deployed recommender is trained on the past and used on the future. A **temporal
# split** mimics that: choose a cutoff time, train on every rating made up to it, test
# on every rating made after it. With `train_fraction=0.8`, the cutoff is the time of
# the rating at position 80% in time order. The validation set is again carved from the
# training side, and again in time: the ratings between the 70% and the 80% positions,
# so that every choice is made on a "future" that the model has not trained on either.
#
# Timestamps have a resolution of one second, and several ratings can share one, so a
# cutoff can fall inside a group of ties. `temporal_cutoff` puts the whole group on
# the earlier side (a rating at exactly the cutoff time counts as "past"), which keeps
# the rule simple: train is `timestamp <= cutoff`, later parts are `timestamp > cutoff`,
# and every test rating is strictly later than every training and validation rating.
# The earlier parts can therefore be a few ratings larger than the requested fractions.

# %% tags=["export"]
import numpy as np
import tensorflow as tf


def temporal_cutoff(timestamps: np.ndarray, fraction: float) -> int:
    """The timestamp of the rating at position ``round(fraction * n)`` in time order.

    Positions are 1-based and clipped to ``1 … n - 1``; ratings at that second count as
    *before* the cutoff (``timestamp <= cutoff``).

    Raises:
        ValueError: if ``fraction`` is not strictly between 0 and 1, or if no rating is
            later than the cutoff (all timestamps tie).
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be strictly between 0 and 1, got {fraction}")
    ordered = np.sort(np.asarray(timestamps))
    n = len(ordered)
    k = min(max(int(round(fraction * n)), 1), n - 1)
    cutoff = int(ordered[k - 1])
    if cutoff >= ordered[-1]:
        raise ValueError("no rating is later than the cutoff, so the later part would be empty")
    return cutoff


def temporal_split(
    ratings: tf.data.Dataset,
    *,
    train_fraction: float = 0.8,
    validation_fraction: float = 0.1,
) -> tuple[tf.data.Dataset, tf.data.Dataset, tf.data.Dataset]:
    """Split ratings at two time cutoffs: ``(train, validation, test)``.

    The test cutoff is ``temporal_cutoff(timestamps, train_fraction)``: test holds every
    rating strictly later than it, so every test rating is later than every other rating.
    The validation cutoff is ``temporal_cutoff(timestamps, train_fraction -
    validation_fraction)``: validation holds the ratings between the two cutoffs and
    train those up to the first. With ``validation_fraction=0`` the validation set is
    empty and train is everything up to the test cutoff. All three outputs keep the
    input's order and are lazy views of ``ratings`` (each pass re-reads it).

    Raises:
        ValueError: if a fraction is outside its range, or if no rating is later than a
            cutoff (all timestamps tie).
    """
    if not 0 <= validation_fraction < train_fraction:
        raise ValueError(f"validation_fraction must be in [0, train_fraction), got {validation_fraction}")
    timestamps = to_numpy(ratings, ("timestamp",))["timestamp"]
    test_cutoff = temporal_cutoff(timestamps, train_fraction)
    if validation_fraction > 0:
        validation_cutoff = temporal_cutoff(timestamps, train_fraction - validation_fraction)
    else:
        validation_cutoff = test_cutoff
    labels = np.where(timestamps > test_cutoff, 2, np.where(timestamps > validation_cutoff, 1, 0))
    return tuple(_keep_labelled(ratings, labels, part) for part in (0, 1, 2))


# %%
temporal_train, temporal_validation, temporal_test = temporal_split(analysis)
cutoff = temporal_cutoff(columns["timestamp"], 0.8)
temporal_cols = {name: to_numpy(part, SPLIT_KEYS) for name, part in
                 (("train", temporal_train), ("validation", temporal_validation), ("test", temporal_test))}
record("dataset.temporal_cutoff", cutoff)
record("dataset.temporal_train_size", len(temporal_cols["train"]["timestamp"]))
record("dataset.temporal_validation_size", len(temporal_cols["validation"]["timestamp"]))
record("dataset.temporal_test_size", len(temporal_cols["test"]["timestamp"]))
record("dataset.temporal_cutoff_ties", int(np.sum(columns["timestamp"] == cutoff)))
assert temporal_cols["train"]["timestamp"].max() < temporal_cols["validation"]["timestamp"].min()
assert temporal_cols["validation"]["timestamp"].max() <= cutoff < temporal_cols["test"]["timestamp"].min()
assert sum(len(part["timestamp"]) for part in temporal_cols.values()) == num_ratings

def as_date(timestamp: int) -> str:
    return datetime.datetime.fromtimestamp(int(timestamp), tz=datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


print("first rating:", as_date(columns["timestamp"].min()))
print("cutoff:      ", as_date(cutoff))
print("last rating: ", as_date(columns["timestamp"].max()))
record("dataset.days_covered", float((columns["timestamp"].max() - columns["timestamp"].min()) / 86_400))

# %% [markdown]
# The ratings span about seven months, from September 1997 to April 1998, and the
# cutoff falls in early March 1998. A few ratings share the cutoff second, so training
# and validation together hold slightly more than 80,000 ratings. Weekly counts show
# that activity was far from steady:

# %%
week = 7 * 86_400
edges = np.arange(columns["timestamp"].min(), columns["timestamp"].max() + week, week)
per_week, _ = np.histogram(columns["timestamp"], bins=edges)
starts = mdates.date2num(edges[:-1].astype("datetime64[s]"))  # matplotlib counts dates in days
fig, ax = plt.subplots(figsize=(9, 4))
ax.bar(starts, per_week, width=6, align="edge", color="tab:blue")
ax.xaxis_date()
cutoff_day = mdates.date2num(np.datetime64(cutoff, "s"))
ax.axvline(cutoff_day, color="tab:red", linestyle="--", label="temporal cutoff (80% of ratings before)")
ax.set(title="MovieLens 100k: ratings per week", xlabel="week starting", ylabel="number of ratings")
ax.set_ylim(0, 1.2 * per_week.max())  # leave room for the legend
ax.legend(loc="upper left")
fig.autofmt_xdate()
plt.show()

# %% [markdown]
# ### Leakage: training on the future
#
# In the random split, test ratings are scattered over the whole seven months, and the
# training set contains ratings made *after* them. A model evaluated this way has seen
# the future: which films became popular later, how a user's taste drifted, even the
# user's later ratings of the sequel. None of that is available to a deployed system,
# so the random split tends to overestimate how well a model will work. This is
# **leakage** of information from the test period into training (Campos et al., 2014;
# Meng et al., 2020).
#
# A temporal split removes it by construction, and it also exposes a problem the random
# split hides: users who joined after the cutoff have no training ratings at all
# (**cold start**). A random split almost never produces such users, because each user
# has at least 20 ratings and some of them almost surely land in the training set.
# The next two exercises put numbers on both effects.
#
# ### Exercise 4 (2 points): how much of the training data is in the future?
#
# For one test rating made at time $t$, the fraction of training ratings made strictly
# later than $t$ says how much "future" the model was trained on. Average that fraction
# over all test ratings:
#
# $$
# \text{future fraction} = \frac{1}{|T|} \sum_{t \in T} \frac{|\{u \in R : u > t\}|}{|R|},
# $$
#
# where $R$ holds the training timestamps and $T$ the test timestamps.
#
# **Hint:** a double loop over 20,000 × 80,000 pairs is far too slow. Sort the training
# timestamps once; then `np.searchsorted(sorted_train, test, side="right")` tells, for
# every test timestamp at once, how many training timestamps are less than or equal to
# it.

# %% nbgrader={"grade": false, "grade_id": "future_fraction", "locked": false, "schema_version": 3, "solution": true}
def future_fraction(train_timestamps: np.ndarray, test_timestamps: np.ndarray) -> float:
    """Average, over test ratings, of the share of training ratings made strictly later.

    Args:
        train_timestamps: 1-d integer array, non-empty, any order.
        test_timestamps: 1-d integer array, non-empty, any order.

    Returns:
        A float in ``[0, 1]``: ``0.0`` when no training rating is later than any test
        rating (a leak-free temporal split), about ``0.5`` for a random split.
        A training rating at the *same* second as a test rating does not count as later.
    """
    ### BEGIN SOLUTION
    ordered = np.sort(np.asarray(train_timestamps))
    not_later = np.searchsorted(ordered, np.asarray(test_timestamps), side="right")
    later = len(ordered) - not_later
    return float(np.mean(later / len(ordered)))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_future_fraction", "locked": true, "points": 2, "schema_version": 3, "solution": false}
from movierec.checks import close as _close, number as _number, plain_value as _plain_value
_f = future_fraction(np.array([1, 2, 3, 4]), np.array([2]))
assert isinstance(_f, float), f"future_fraction should return a float, got {type(_f).__name__}"
assert _close(_f, 0.5), f"train [1, 2, 3, 4], test [2]: two of four training ratings (3 and 4) are later, so 0.5; got {_f}"
assert _close(future_fraction(np.array([4, 3, 2, 1]), np.array([0, 5])), 0.5), "test [0, 5] against train 1..4: (4/4 + 0/4) / 2 = 0.5 (the training array may be unsorted)"
_temporal = _number(future_fraction(temporal_cols["train"]["timestamp"], temporal_cols["test"]["timestamp"]))
assert _temporal == 0.0, f"the temporal split has no training rating after any test rating, so 0.0; got {_temporal}"
print("future_fraction: visible tests passed")
### BEGIN HIDDEN TESTS
assert _close(future_fraction(np.array([5, 5, 5]), np.array([5])), 0.0), "ratings at the same second are not later"
_tr = random_cols["train"]["timestamp"]
_te = random_cols["test"]["timestamp"][:300]
_brute = float(np.mean([(_tr > t).mean() for t in _te]))
assert _close(future_fraction(_tr, _te), _brute), f"on 300 random-split test ratings expected {_brute:.6f} (brute force), got {future_fraction(_tr, _te):.6f}"
_full = _number(future_fraction(_tr, random_cols["test"]["timestamp"]))
assert 0.3 < _full < 0.7, f"for a random split about half of the training data is later than a typical test rating; got {_full}"
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 5 (2 points): cold start in the test set
#
# Write `cold_start_share(train_values, test_values)`: the fraction of **test ratings**
# whose value (a user id, or a movie title) never occurs in the training ratings. A
# model cannot have learned anything specific about such users or movies.
#
# **Hint:** put the training values in a Python `set` (`set(train_values.tolist())`),
# so that each membership test is instant, then count the test entries that are not in
# it. Count test *ratings*, not distinct values: a new user with 50 test ratings counts
# 50 times.
#
# **Pitfall:** `np.isin` is fast on numbers, but on `object` arrays (which is how
# `to_numpy` returns strings) it compares every pair of values, and 20,000 × 80,000
# byte-string comparisons take minutes.

# %% nbgrader={"grade": false, "grade_id": "cold_start_share", "locked": false, "schema_version": 3, "solution": true}
def cold_start_share(train_values: np.ndarray, test_values: np.ndarray) -> float:
    """Fraction of test ratings whose value does not occur anywhere in the training ratings.

    Args:
        train_values: 1-d array of one feature over the training ratings (e.g. user ids
            as bytes), possibly with repeats.
        test_values: 1-d array of the same feature over the test ratings, non-empty.

    Returns:
        ``(number of test entries not in train_values) / len(test_values)``, a float in
        ``[0, 1]``.
    """
    ### BEGIN SOLUTION
    known = set(np.asarray(train_values).tolist())
    test_list = np.asarray(test_values).tolist()
    unseen = sum(value not in known for value in test_list)
    return unseen / len(test_list)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_cold_start_share", "locked": true, "points": 2, "schema_version": 3, "solution": false}
from movierec.checks import close as _close, number as _number, plain_value as _plain_value
_s = cold_start_share(np.array([b"a", b"b", b"a"]), np.array([b"a", b"c", b"c", b"d"]))
assert isinstance(_s, float), f"cold_start_share should return a float, got {type(_s).__name__}"
assert _close(_s, 0.75), f"train {{a, b}}, test [a, c, c, d]: three of four test ratings are unseen, 0.75; got {_s}"
_train_users = temporal_cols["train"]["user_id"]
_test_users = temporal_cols["test"]["user_id"]
_known = set(_train_users.tolist())
_expected = sum(u not in _known for u in _test_users.tolist()) / len(_test_users)
_got = cold_start_share(_train_users, _test_users)
assert _close(_got, _expected), f"temporal split, users: expected {_expected:.4f} of test ratings from new users, got {_got:.4f}"
print("cold_start_share: visible tests passed")
### BEGIN HIDDEN TESTS
assert _close(cold_start_share(np.array([1, 2, 3]), np.array([3, 2, 1, 1])), 0.0, atol=0.0), "every test value seen in training gives 0.0"
assert _close(cold_start_share(np.array([1, 2]), np.array([7, 8])), 1.0, atol=0.0), "no test value seen in training gives 1.0"
for _split in (random_cols, temporal_cols):
    _known = set(_split["train"]["movie_title"].tolist())
    _titles = _split["test"]["movie_title"].tolist()
    _expected = sum(t not in _known for t in _titles) / len(_titles)
    assert _close(cold_start_share(_split["train"]["movie_title"], _split["test"]["movie_title"]), _expected), "movie titles: share of unseen test titles is wrong"
### END HIDDEN TESTS

# %% [markdown]
# Both measures, on both splits:

# %%
split_report = {}
for split_name, cols in (("random", random_cols), ("temporal", temporal_cols)):
    split_report[split_name] = {
        "future fraction": future_fraction(cols["train"]["timestamp"], cols["test"]["timestamp"]),
        "new-user share": cold_start_share(cols["train"]["user_id"], cols["test"]["user_id"]),
        "new-movie share": cold_start_share(cols["train"]["movie_title"], cols["test"]["movie_title"]),
    }
print(f"{'split':<10}" + "".join(f"{name:>18}" for name in split_report["random"]))
for split_name, row in split_report.items():
    print(f"{split_name:<10}" + "".join(f"{value:>18.4f}" for value in row.values()))
record("dataset.random_future_fraction", split_report["random"]["future fraction"])
record("dataset.random_new_user_share", split_report["random"]["new-user share"])
record("dataset.temporal_new_user_share", split_report["temporal"]["new-user share"])
record("dataset.temporal_new_movie_share", split_report["temporal"]["new-movie share"])
assert 0.4 < split_report["random"]["future fraction"] < 0.6 and split_report["random"]["new-user share"] == 0.0
assert split_report["temporal"]["new-user share"] > 0.75 > 0.1 > split_report["temporal"]["new-movie share"]

# %% [markdown]
# In the random split, a typical test rating has about half of the training ratings in
# its future, and every test user already has training ratings. In the temporal split
# nothing leaks, but the picture changes completely: most test ratings (well over
# three quarters) come from users who have no rating before the cutoff. New *movies*
# are much rarer, since the catalogue barely changes in seven months.
#
# Why so many new users? Measure, for each user, the time between their first and last
# rating:

# %%
_, user_index = np.unique(columns["user_id"], return_inverse=True)
first_seen = np.full(user_index.max() + 1, np.iinfo(np.int64).max)
last_seen = np.zeros(user_index.max() + 1, dtype=np.int64)
np.minimum.at(first_seen, user_index, columns["timestamp"])  # earliest rating per user
np.maximum.at(last_seen, user_index, columns["timestamp"])  # latest rating per user
active_days = (last_seen - first_seen) / 86_400
record("dataset.median_user_active_minutes", float(np.median(active_days) * 24 * 60))
record("dataset.share_users_active_within_a_day", float(np.mean(active_days < 1)))
assert np.median(active_days) * 24 * 60 < 90 and 0.6 < np.mean(active_days < 1) < 0.75

# %% [markdown]
# The median user rated everything within an hour or so, and about two thirds of the
# users were done within a day. Most people signed up, rated a batch of films in one
# sitting, and did not come back, so the users who
# rate after the cutoff are, for the most part, people who signed up after it. A model
# that only knows user ids can do nothing for them except fall back on popularity;
# features that a brand-new user already has (age, occupation, the first few ratings)
# are the usual way out.
#
# ### A per-user temporal hold-out
#
# The global cutoff answers "how would a model trained in March do on the users of
# April?", and in MovieLens most of those are strangers: it is the cold-start protocol.
# For users the system already knows, a closer match to production is a **per-user
# temporal hold-out** (sometimes called leave-last-out): for every user, sort their
# ratings by time and hold out the *latest* ones. Each test rating is then later than
# all of that user's training ratings — no user is trained on their own future — while
# every test user has a history to learn from. Other users' later ratings can still be
# in training, so some global leakage remains (exercise 4's measure says how much).
#
# `user_temporal_split` holds out each user's last 20% of ratings as the test set and the
# 10% before them as validation (rounded, at least one each; every user has at least
# 20 ratings). Ratings of one user at the same second keep their file order.

# %% tags=["export"]
import numpy as np
import tensorflow as tf


def user_temporal_split(
    ratings: tf.data.Dataset,
    *,
    test_fraction: float = 0.2,
    validation_fraction: float = 0.1,
) -> tuple[tf.data.Dataset, tf.data.Dataset, tf.data.Dataset]:
    """Per-user temporal hold-out: ``(train, validation, test)``.

    For every user, their ratings are ordered by ``timestamp`` (ties keep the input
    order); the last ``max(1, round(test_fraction * n))`` go to test, the
    ``max(1, round(validation_fraction * n))`` before them to validation (none if
    ``validation_fraction`` is 0), the rest to train, where ``n`` is the user's number of
    ratings. So each user's test ratings are no earlier than their validation ratings,
    which are no earlier than their training ratings. Outputs keep the input's order.

    Raises:
        ValueError: if the fractions are negative, or leave no training part.
    """
    if not (0 < test_fraction and 0 <= validation_fraction and test_fraction + validation_fraction < 1):
        raise ValueError(f"need 0 < test_fraction, 0 <= validation_fraction and a sum below 1; got "
                         f"{test_fraction}, {validation_fraction}")
    cols = to_numpy(ratings, ("user_id", "timestamp"))
    _, user = np.unique(cols["user_id"], return_inverse=True)
    order = np.lexsort((np.arange(len(user)), cols["timestamp"], user))  # by user, then time, then position
    counts = np.bincount(user)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    from_end = np.empty(len(user), dtype=np.int64)  # 0 for each user's latest rating
    from_end[order] = counts[user[order]] - 1 - (np.arange(len(user)) - starts[user[order]])
    n_test = np.maximum(1, np.round(test_fraction * counts)).astype(np.int64)
    n_validation = np.maximum(1, np.round(validation_fraction * counts)).astype(np.int64)
    if not validation_fraction:
        n_validation = np.zeros_like(counts)
    labels = np.where(from_end < n_test[user], 2, np.where(from_end < (n_test + n_validation)[user], 1, 0))
    return tuple(_keep_labelled(ratings, labels, part) for part in (0, 1, 2))


# %%
user_train, user_validation, user_test = user_temporal_split(analysis)
user_cols = {name: to_numpy(part, SPLIT_KEYS) for name, part in
             (("train", user_train), ("validation", user_validation), ("test", user_test))}
record("dataset.user_temporal_train_size", len(user_cols["train"]["timestamp"]))
record("dataset.user_temporal_validation_size", len(user_cols["validation"]["timestamp"]))
record("dataset.user_temporal_test_size", len(user_cols["test"]["timestamp"]))
_last_train = {}
for _user, _t in zip(user_cols["train"]["user_id"].tolist(), user_cols["train"]["timestamp"].tolist(), strict=True):
    _last_train[_user] = max(_t, _last_train.get(_user, _t))
assert all(_t >= _last_train[_user] for _user, _t in zip(user_cols["test"]["user_id"].tolist(), user_cols["test"]["timestamp"].tolist(), strict=True))
user_report = {
    "future fraction": future_fraction(user_cols["train"]["timestamp"], user_cols["test"]["timestamp"]),
    "new-user share": cold_start_share(user_cols["train"]["user_id"], user_cols["test"]["user_id"]),
    "new-movie share": cold_start_share(user_cols["train"]["movie_title"], user_cols["test"]["movie_title"]),
}
print(f"{'per-user':<10}" + "".join(f"{value:>18.4f}" for value in user_report.values()))
record("dataset.user_temporal_future_fraction", user_report["future fraction"])
record("dataset.user_temporal_new_user_share", user_report["new-user share"])
assert user_report["new-user share"] == 0.0
assert user_report["future fraction"] < split_report["random"]["future fraction"]

# %% [markdown]
# No test user is new, every user's test ratings come after their own training ratings,
# and the share of training data in a test rating's future is smaller than with the
# random split, though not zero: other users' later ratings are still there.
#
# **Which split should you use?** It depends on the question, so the course reports
# all three:
#
# * **random** (`random_split`): comparable with the TFRS tutorials and most published
#   MovieLens numbers, but optimistic — it trains on the future, even on the same
#   rating session as a test rating;
# * **per-user temporal** (`user_temporal_split`): known users, predicting what they
#   rate next — the closest to production for returning users;
# * **global temporal** (`temporal_split`): everything after a date, which in MovieLens
#   is mostly new users — the cold-start protocol.
#
# Whichever you choose, choose it *before* looking at test results. Tune on the
# validation part; read the test part once per model.

# %% [markdown]
# ## 7. Vocabularies
#
# An embedding layer needs every id mapped to a row number, and the list of distinct
# values that defines the mapping is the **vocabulary**. Lesson 03 builds lookup layers
# from vocabularies; here we compute them and check what they contain. `unique_values`
# reads one scalar feature in batches and returns its distinct values, sorted.

# %% tags=["export"]
import numpy as np
import tensorflow as tf


def unique_values(dataset: tf.data.Dataset, key: str) -> np.ndarray:
    """Sorted distinct values of one scalar feature of a dataset of dicts.

    The feature is read batch by batch (see :func:`to_numpy`), which is much faster than
    iterating element by element. String features give an ``object`` array of ``bytes``
    sorted bytewise, e.g. ``b"1" < b"10" < b"2"``; numeric features give a numeric array.
    """
    return np.unique(to_numpy(dataset, (key,))[key])


# %%
user_vocabulary = unique_values(analysis, "user_id")
movie_id_vocabulary = unique_values(movies, "movie_id")
title_vocabulary = unique_values(movies, "movie_title")
num_users = record("dataset.num_users", len(user_vocabulary))
num_movie_ids = record("dataset.num_movie_ids", len(movie_id_vocabulary))
num_titles = record("dataset.num_titles", len(title_vocabulary))
record("dataset.num_shared_title_movies", num_movie_ids - num_titles)
print("first user ids:", user_vocabulary[:5])
print("first titles:  ", title_vocabulary[:3])
assert np.array_equal(title_vocabulary, unique_values(analysis, "movie_title")), "every movie has at least one rating"

# %% [markdown]
# There are 943 users and 1,682 movie ids, but only 1,664 distinct titles. Eighteen
# titles belong to two movie ids each. MovieLens 100k is known to contain such
# duplicates: the same film entered twice, with the same title and year.
#
# Whether that matters depends on the item key. The TFRS tutorials identify movies by
# `movie_title`, which silently merges each pair into one item (1,664 items); keying by
# `movie_id` keeps 1,682 items, two of them for the same film. Neither choice is wrong,
# but you should know which one you made: it changes the size of every item vocabulary
# and embedding table built from it.
#
# ### Exercise 6 (2 points): find the duplicated titles
#
# Write `duplicate_titles(movies)`, returning each title that belongs to more than one
# movie id, with its ids.
#
# **Hint:** read `movie_id` and `movie_title` with `to_numpy` (it skips
# `movie_genres` for you) and group the ids by title in a dictionary of lists. Movie ids
# are strings of digits, so sort them with `key=int`; plain sorting would put `b"10"`
# before `b"9"`.

# %% nbgrader={"grade": false, "grade_id": "duplicate_titles", "locked": false, "schema_version": 3, "solution": true}
def duplicate_titles(movies: tf.data.Dataset) -> dict[bytes, list[bytes]]:
    """Titles shared by more than one movie id.

    Args:
        movies: a dataset of dicts with scalar ``movie_id`` and ``movie_title`` (bytes),
            such as :func:`load_movies`; other features may be present.

    Returns:
        ``{title: [movie_id, ...]}`` for every title with at least two distinct ids. The
        ids are ``bytes`` sorted in increasing *numeric* order (``b"9"`` before
        ``b"10"``). Titles with a single id are left out.
    """
    ### BEGIN SOLUTION
    cols = to_numpy(movies, ("movie_id", "movie_title"))
    ids_by_title: dict[bytes, set[bytes]] = {}
    for movie_id, title in zip(cols["movie_id"], cols["movie_title"], strict=True):
        ids_by_title.setdefault(title, set()).add(movie_id)
    return {title: sorted(ids, key=int) for title, ids in ids_by_title.items() if len(ids) > 1}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_duplicate_titles", "locked": true, "points": 2, "schema_version": 3, "solution": false}
from movierec.checks import close as _close, number as _number, plain_value as _plain_value
_dups = duplicate_titles(movies)
assert type(_dups) is dict, f"duplicate_titles should return a plain dict, got {type(_dups).__name__}"
_dups = _plain_value(_dups)  # exact Python types from here on: lists of bytes
assert len(_dups) == 18, f"MovieLens 100k has 18 titles shared by several movie ids; got {len(_dups)}"
assert all(isinstance(t, bytes) for t in _dups), "titles should be bytes, as they come out of the dataset"
assert all(len(ids) >= 2 for ids in _dups.values()), "every listed title must have at least two ids"
assert sum(len(ids) - 1 for ids in _dups.values()) == num_movie_ids - num_titles, "the extra ids should explain the gap between 1,682 movie ids and 1,664 titles"
_catalogue = to_numpy(movies, ("movie_id", "movie_title"))
_title_of = dict(zip(_catalogue["movie_id"].tolist(), _catalogue["movie_title"].tolist(), strict=True))
for _title, _ids in _dups.items():
    for _id in _ids:
        assert _title_of.get(_id) == _title, f"movie id {_id!r} is listed under {_title!r} but its title is {_title_of.get(_id)!r}"
print("duplicate_titles: visible tests passed")
### BEGIN HIDDEN TESTS
for _title, _ids in _dups.items():
    assert _ids == sorted(_ids, key=int), f"ids of {_title!r} should be in numeric order, got {_ids}"
    assert all(isinstance(i, bytes) for i in _ids), "ids should be bytes"
_toy_movies = tf.data.Dataset.from_tensor_slices({
    "movie_id": tf.constant([b"10", b"9", b"3", b"4"]),
    "movie_title": tf.constant([b"A", b"A", b"B", b"C"]),
})
assert _plain_value(duplicate_titles(_toy_movies)) == {b"A": [b"9", b"10"]}, f"toy catalogue: expected {{b'A': [b'9', b'10']}}, got {duplicate_titles(_toy_movies)}"
_unique_toy = tf.data.Dataset.from_tensor_slices({"movie_id": tf.constant([b"1", b"2"]), "movie_title": tf.constant([b"A", b"B"])})
assert _plain_value(duplicate_titles(_unique_toy)) == {}, "a catalogue without shared titles gives an empty dict"
### END HIDDEN TESTS

# %% [markdown]
# The eighteen pairs, with the number of ratings each id received:

# %%
ratings_of_id = dict(zip(*np.unique(columns["movie_id"], return_counts=True), strict=True))
for title, ids in sorted(duplicate_titles(movies).items()):
    counts = ", ".join(f"id {i.decode()}: {ratings_of_id.get(i, 0)}" for i in ids)
    print(f"{title.decode():<34} {counts}")
assert round(mean_rating, 1) == 3.5 and top10_movie_share > 0.40  # figures the summary below quotes

# %% [markdown]
# Both ids of a pair were rated, often by dozens of users each: people found whichever
# entry came up and rated it. With `movie_id` as the key, the ratings of one film are
# split between two items, and each learns from only part of the evidence; with
# `movie_title` the two halves are pooled again.
#
# ## Summary
#
# * `tfds.load(name, split=...)` returns a lazy `tf.data.Dataset`; `with_info=True`
#   adds the feature specification and split sizes. MovieLens 100k has one split with
#   all 100,000 ratings.
# * A pipeline is built with `map`, `batch`, `cache` and `prefetch` and runs only when
#   iterated; `map` functions are traced once into a graph. Select features before
#   batching, because `movie_genres` has a varying length.
# * Ratings lean positive (mean about 3.5), and both users and movies have long tails:
#   the top 10% of movies receive over 40% of the ratings.
# * Every split has three parts: train, validation (for every choice: epochs,
#   settings, models) and test (read once per model). A random split is comparable
#   with published work but trains on the future; a global temporal split is leak-free
#   and reveals cold-start users; a per-user temporal hold-out tests known users on
#   their own later ratings.
# * The vocabularies hold 943 user ids, 1,682 movie ids and 1,664 titles.
#
# From `movierec.dataset`, later lessons import `load_ratings`, `load_movies`,
# `random_split`, `temporal_split`, `user_temporal_split`, `temporal_cutoff`,
# `unique_values` and `to_numpy`.

# %% [markdown]
# ## References
#
# * F. M. Harper, J. A. Konstan (2015). "The MovieLens Datasets: History and Context."
#   *ACM Transactions on Interactive Intelligent Systems* 5(4), article 19.
#   <https://doi.org/10.1145/2827872>
# * TensorFlow Datasets catalog: `movielens`.
#   <https://www.tensorflow.org/datasets/catalog/movielens>
# * TensorFlow guide: "tf.data: Build TensorFlow input pipelines."
#   <https://www.tensorflow.org/guide/data>, and "Better performance with the tf.data
#   API." <https://www.tensorflow.org/guide/data_performance>
# * TensorFlow API: `tf.random.set_seed` (how global and op seeds combine).
#   <https://www.tensorflow.org/api_docs/python/tf/random/set_seed>
# * TensorFlow Recommenders, "Recommending movies: retrieval" (the 80,000/20,000 random
#   split). <https://www.tensorflow.org/recommenders/examples/basic_retrieval>
# * P. G. Campos, F. Díez, I. Cantador (2014). "Time-aware recommender systems: a
#   comprehensive survey and analysis of existing evaluation protocols." *User Modeling
#   and User-Adapted Interaction* 24, 67–119. <https://doi.org/10.1007/s11257-012-9136-x>
# * Z. Meng, R. McCreadie, C. Macdonald, I. Ounis (2020). "Exploring Data Splitting
#   Strategies for the Evaluation of Recommendation Models." *RecSys '20.*
#   <https://doi.org/10.1145/3383313.3418479>
