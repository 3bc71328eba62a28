# DO NOT EDIT — generated from solutions/02_dataset.py by `python -m grader build`: edit the lesson instead.
"""Building blocks from lesson 02_dataset: Lesson 02 — MovieLens 100k with TFDS and tf.data.

The cells tagged ``export`` in solutions/02_dataset.py, in lesson order; each block
names the section of the lesson that explains it.
"""

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

# --- from solutions/02_dataset.py, section: 1. One call to TensorFlow Datasets
RATINGS_NAME = "movielens/100k-ratings"
MOVIES_NAME = "movielens/100k-movies"


def load_ratings() -> tf.data.Dataset:
    """All 100,000 MovieLens 100k ratings, one dict of features per rating.

    TFDS stores every rating in its single ``"train"`` split; making a train/test split
    is left to :func:`random_split` or :func:`temporal_split`. The file order is kept
    (``shuffle_files=False``) so that seeded shuffles downstream repeat exactly.
    """
    return tfds.load(RATINGS_NAME, split="train", shuffle_files=False)


def load_movies() -> tf.data.Dataset:
    """The 1,682 movies of MovieLens 100k: ``movie_id``, ``movie_title``, ``movie_genres``.

    This is the candidate catalogue: every movie appears once, whether or not it was
    rated often, which is what a retrieval model must be able to recommend from.
    """
    return tfds.load(MOVIES_NAME, split="train", shuffle_files=False)


# --- from solutions/02_dataset.py, section: Exercise 1 (1 point): select features
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


# --- from solutions/02_dataset.py, section: A random split
def random_split(
    ratings: tf.data.Dataset,
    *,
    seed: int = 42,
    train_size: int = 80_000,
    test_size: int = 20_000,
) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """Shuffle all ratings once with a fixed seed and cut them into (train, test).

    The recipe matches the TensorFlow Recommenders basic retrieval tutorial, so results
    are comparable with it: set the global seed, shuffle with a buffer of 100,000 (the
    whole dataset, hence a uniform permutation) and the same op seed, then take the
    first ``train_size`` ratings for training and the next ``test_size`` for testing.

    Side effect: calls ``tf.random.set_seed(seed)``. A shuffle's order depends on the
    global seed as well as on its own ``seed``, so without this the split would change
    with whatever global seed the caller happened to set before.

    ``reshuffle_each_iteration=False`` gives the same order on every pass, so the two
    returned datasets stay disjoint however many times each is iterated. Each pass
    re-runs the shuffle over the whole input; cache the input (or the outputs) if
    reading it is slow.
    """
    tf.random.set_seed(seed)
    shuffled = ratings.shuffle(100_000, seed=seed, reshuffle_each_iteration=False)
    train = shuffled.take(train_size)
    test = shuffled.skip(train_size).take(test_size)
    return train, test


# --- from solutions/02_dataset.py, section: A temporal split
def temporal_split(
    ratings: tf.data.Dataset,
    *,
    train_fraction: float = 0.8,
) -> tuple[tf.data.Dataset, tf.data.Dataset, int]:
    """Split ratings at a time cutoff: ``(train, test, cutoff_timestamp)``.

    ``cutoff_timestamp`` is the ``timestamp`` of the rating at position
    ``round(train_fraction * n)`` in time order (1-based, clipped to ``1 … n - 1``).
    Train holds the ratings with ``timestamp <= cutoff`` and test those with
    ``timestamp > cutoff``, so every test rating is strictly later than every training
    rating. Ratings that tie with the cutoff all go to train, which can make train a
    little larger than ``train_fraction`` of the data. Both outputs keep the input's
    order and are lazy views of ``ratings`` (cardinality unknown): each pass re-reads
    ``ratings`` and keeps the matching elements. When every feature is a scalar, the
    selection is done on batches of 1,024 (``boolean_mask``, then ``unbatch``), several
    times cheaper than ``filter``, which calls its predicate once per element.

    Raises:
        ValueError: if ``train_fraction`` is not strictly between 0 and 1, or if no
            rating is later than the cutoff (all timestamps tie).
    """
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be strictly between 0 and 1, got {train_fraction}")
    timestamps = np.sort(to_numpy(ratings, ("timestamp",))["timestamp"])
    n = len(timestamps)
    k = min(max(int(round(train_fraction * n)), 1), n - 1)
    cutoff = int(timestamps[k - 1])
    if cutoff >= timestamps[-1]:
        raise ValueError("no rating is later than the cutoff, so the test set would be empty")
    if _all_scalar(ratings):

        def keep(later: bool) -> tf.data.Dataset:
            def select(batch: dict) -> dict:
                mask = batch["timestamp"] > cutoff if later else batch["timestamp"] <= cutoff
                return {key: tf.boolean_mask(value, mask) for key, value in batch.items()}

            return ratings.batch(1024).map(select).unbatch()

        return keep(False), keep(True), cutoff
    train = ratings.filter(lambda example: example["timestamp"] <= cutoff)
    test = ratings.filter(lambda example: example["timestamp"] > cutoff)
    return train, test, cutoff


# --- from solutions/02_dataset.py, section: 7. Vocabularies
def unique_values(dataset: tf.data.Dataset, key: str) -> np.ndarray:
    """Sorted distinct values of one scalar feature of a dataset of dicts.

    The feature is read batch by batch (see :func:`to_numpy`), which is much faster than
    iterating element by element. String features give an ``object`` array of ``bytes``
    sorted bytewise, e.g. ``b"1" < b"10" < b"2"``; numeric features give a numeric array.
    """
    return np.unique(to_numpy(dataset, (key,))[key])
