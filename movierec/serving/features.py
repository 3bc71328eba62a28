"""Raw ids to model features inside the exported graph: the lookup tables of lesson 07's servables.

Hand-written, not generated from a lesson: lesson 07 (section 5) explains the idea in a
paragraph and imports it. A client of a served model knows a user id and a title, while
the towers and the ranker take dicts of raw features; these tables, built from the
training ratings and the catalogue, are saved inside each SavedModel like variables, so
the lookups run in the graph — in TF Serving too — and no client can apply a stale
vocabulary.

* :func:`user_feature_table` — one row per user: the profile and the time of the latest rating;
* :func:`movie_feature_table` — one row per distinct title: its movie id and genres as text;
* :func:`distinct_titles` — one row per title of the catalogue's embeddings (18 MovieLens
  titles name two movie ids; a title returned twice is one movie too few);
* :class:`FeatureLookup` — ``tf.lookup.StaticHashTable`` s from ids to those features, with
  defaults for ids the tables do not hold;
* :func:`encoder_rows` and :func:`row_table` — the ranker encoder's user half per known user
  and title half per known title, computed once at export (lesson 07, section 6), and the
  table from an id to its row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf

from movierec.dataset import to_numpy

__all__ = ["TITLE_BLOCKS", "UNKNOWN_ID", "USER_BLOCKS", "USER_FEATURES", "FeatureLookup", "distinct_titles",
           "encoder_rows", "movie_feature_table", "rating_columns", "row_table", "user_feature_table"]

USER_FEATURES = (
    "bucketized_user_age",
    "raw_user_age",
    "user_gender",
    "user_occupation_label",
    "user_occupation_text",
    "user_zip_code",
    "timestamp",
)


def rating_columns(ratings: tf.data.Dataset | Mapping, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Scalar columns ``keys`` as NumPy arrays, from a ratings dataset or an already-read dict of columns.

    The lessons read the training ratings once (lesson 04's ``read_train_test``) and pass the
    columns around; a dataset still works, at the cost of another pass over it.
    """
    if isinstance(ratings, tf.data.Dataset):
        return to_numpy(ratings, keys)
    missing = [key for key in keys if key not in ratings]
    if missing:
        raise ValueError(f"the ratings have no {missing}; they have {sorted(ratings)}")
    return {key: np.asarray(ratings[key]) for key in keys}


def user_feature_table(ratings: tf.data.Dataset | Mapping) -> dict[str, np.ndarray]:
    """One row per user: ``user_id``, the profile features, and the latest ``timestamp``.

    MovieLens repeats a user's profile in each of their ratings; keeping the row of the
    most recent rating gives the profile plus the time the user was last active.
    ``ratings`` is a dataset or a dict of columns (:func:`rating_columns`).
    """
    columns = rating_columns(ratings, ("user_id", *USER_FEATURES))
    order = np.lexsort((columns["timestamp"], columns["user_id"]))  # by user, then by time
    users = columns["user_id"][order]
    last_of_user = np.append(users[1:] != users[:-1], True)
    return {name: values[order][last_of_user] for name, values in columns.items()}


def movie_feature_table(movies: tf.data.Dataset) -> dict[str, np.ndarray]:
    """One row per distinct title: ``movie_title``, ``movie_id`` and ``movie_genres`` as text.

    Titles are the item key of the towers; the 18 titles that name two movie ids keep the
    smaller id. Genres become space-separated label numbers (``b"4 7"``).
    """
    batch = next(iter(movies.ragged_batch(1 << 20)))  # the whole catalogue in one batch
    titles = batch["movie_title"].numpy()
    ids = batch["movie_id"].numpy()
    genres = np.array([" ".join(str(g) for g in row).encode() for row in batch["movie_genres"].to_list()], dtype=object)
    order = np.argsort(ids.astype(np.int64), kind="stable")  # smaller movie id first
    _, first = np.unique(titles[order], return_index=True)
    keep = order[first]
    return {"movie_title": titles[keep], "movie_id": ids[keep], "movie_genres": genres[keep]}


def _most_common(values: np.ndarray):
    uniques, counts = np.unique(values, return_counts=True)
    return uniques[np.argmax(counts)]


def _static_table(keys: np.ndarray, values: np.ndarray, default) -> tf.lookup.StaticHashTable:
    values = tf.constant(values)
    initializer = tf.lookup.KeyValueTensorInitializer(tf.constant(keys, tf.string), values)
    return tf.lookup.StaticHashTable(initializer, default_value=tf.constant(default, values.dtype))


class FeatureLookup(tf.Module):
    """In-graph tables from raw ids to the feature dicts the towers and the ranker expect.

    Unknown user ids get each profile feature's most common value and the latest
    timestamp in the data; unknown titles get an empty genre list. ``user_features``
    also returns whether each id was known.
    """

    def __init__(self, users: Mapping[str, np.ndarray], movies: Mapping[str, np.ndarray]) -> None:
        super().__init__(name="feature_lookup")
        user_ids = np.asarray(users["user_id"])
        self.known_users = _static_table(user_ids, np.ones(len(user_ids), dtype=bool), False)
        self.user_tables = {}
        for name in USER_FEATURES:
            values = np.asarray(users[name])
            default = values.max() if name == "timestamp" else _most_common(values)
            self.user_tables[name] = _static_table(user_ids, values, default)
        titles = np.asarray(movies["movie_title"])
        self.movie_ids = _static_table(titles, np.asarray(movies["movie_id"]), b"")
        self.movie_genres = _static_table(titles, np.asarray(movies["movie_genres"]), b"")

    def user_features(self, user_id: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """``(features, known)`` for a ``(batch,)`` string tensor of user ids."""
        features = {"user_id": user_id}
        for name, table in self.user_tables.items():
            features[name] = table.lookup(user_id)
        return features, self.known_users.lookup(user_id)

    def pair_features(self, user_id: tf.Tensor, movie_title: tf.Tensor) -> dict[str, tf.Tensor]:
        """The ranker's raw features for ``(user_id[i], movie_title[i])`` pairs: both halves in one dict."""
        features, _ = self.user_features(user_id)
        features.update(self.movie_features(movie_title))
        return features

    def movie_features(self, movie_title: tf.Tensor) -> dict[str, tf.Tensor]:
        """Movie features for a ``(batch,)`` string tensor of titles; genres are ragged."""
        genre_text = tf.strings.split(self.movie_genres.lookup(movie_title))
        return {
            "movie_title": movie_title,
            "movie_id": self.movie_ids.lookup(movie_title),
            "movie_genres": tf.strings.to_number(genre_text, out_type=tf.int64),
        }


def distinct_titles(titles: Sequence[bytes], vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(titles, vectors)`` with one row per title, the first row of each, in catalogue order."""
    titles = np.asarray(titles)
    _, first = np.unique(titles, return_index=True)
    keep = np.sort(first)
    return titles[keep], np.asarray(vectors, dtype=np.float32)[keep]


USER_BLOCKS = ("user_id", "age", "gender", "occupation", "zip_region", "timestamp", "history")
TITLE_BLOCKS = ("movie_title", "genres", "title_words", "release_year")
UNKNOWN_ID = b"\x00unknown"  # row 0 of each side: every id the tables do not hold (no MovieLens id starts with NUL)


def encoder_rows(ranker: tf.keras.Model, lookup: FeatureLookup) -> dict[str, np.ndarray]:
    """Lesson 05's ranker encoder split into a user half per known user and a title half per known title.

    Every block of the encoder reads the user's features or the title's, never both, and
    ``lookup`` fixes those features per id, so each half depends on one id alone. Returns
    ``users`` and ``titles`` (``UNKNOWN_ID`` first, then the known ids, sorted),
    ``user_rows`` and ``title_rows`` (float32; each row the half's columns, then that id's
    bias, 0 without biases) and ``order``: the permutation that puts ``[user columns,
    title columns]`` back in the encoder's column order. Raises ``ValueError`` for an
    encoder block that is neither a user nor a title block.
    """
    slices = ranker.encoder.block_slices()
    unplaced = set(slices) - set(USER_BLOCKS) - set(TITLE_BLOCKS)
    if unplaced:
        raise ValueError(f"encoder blocks {sorted(unplaced)} are neither user nor title blocks: add them to "
                         "USER_BLOCKS or TITLE_BLOCKS in movierec/serving/features.py")
    user_columns, title_columns = (
        np.concatenate([np.arange(slices[b].start, slices[b].stop) for b in slices if b in side])
        for side in (USER_BLOCKS, TITLE_BLOCKS)
    )
    users = np.concatenate([[UNKNOWN_ID], np.sort(lookup.known_users.export()[0].numpy())])
    titles = np.concatenate([[UNKNOWN_ID], np.sort(lookup.movie_ids.export()[0].numpy())])

    def half(user_ids: np.ndarray, movie_titles: np.ndarray, columns: np.ndarray) -> np.ndarray:
        features = lookup.pair_features(tf.constant(user_ids), tf.constant(movie_titles))
        return ranker.encoder(features).numpy()[:, columns]

    user_half = half(users, np.full(len(users), titles[1]), user_columns)  # any title: its columns are dropped
    title_half = half(np.full(len(titles), users[1]), titles, title_columns)
    user_bias, title_bias = np.zeros(len(users)), np.zeros(len(titles))
    if ranker.biases:
        user_bias = ranker.user_bias(ranker.encoder.user_lookup(tf.constant(users))).numpy()[:, 0]
        title_bias = ranker.title_bias(ranker.encoder.title_lookup(tf.constant(titles))).numpy()[:, 0]
    return {
        "users": users, "titles": titles,
        "user_rows": np.column_stack([user_half, user_bias]).astype(np.float32),
        "title_rows": np.column_stack([title_half, title_bias]).astype(np.float32),
        "order": np.argsort(np.concatenate([user_columns, title_columns])).astype(np.int32),
    }


def row_table(ids: np.ndarray) -> tf.lookup.StaticHashTable:
    """id -> its row, for rows laid out as :func:`encoder_rows` returns them (unknown ids: row 0)."""
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(ids[1:]), tf.range(1, len(ids), dtype=tf.int64)),
        default_value=tf.constant(0, tf.int64),
    )
