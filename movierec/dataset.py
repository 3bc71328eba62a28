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


# --- from solutions/02_dataset.py, section: A third part: validation
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


# --- from solutions/02_dataset.py, section: A temporal split
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


# --- from solutions/02_dataset.py, section: A per-user temporal hold-out
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


# --- from solutions/02_dataset.py, section: 7. Vocabularies
def unique_values(dataset: tf.data.Dataset, key: str) -> np.ndarray:
    """Sorted distinct values of one scalar feature of a dataset of dicts.

    The feature is read batch by batch (see :func:`to_numpy`), which is much faster than
    iterating element by element. String features give an ``object`` array of ``bytes``
    sorted bytewise, e.g. ``b"1" < b"10" < b"2"``; numeric features give a numeric array.
    """
    return np.unique(to_numpy(dataset, (key,))[key])
