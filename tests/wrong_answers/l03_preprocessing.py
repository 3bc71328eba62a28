"""Lesson 03 (preprocessing): the wrong answers a student is most likely to write, and the library shortcuts.

Each entry replaces one solution cell; ``tests/test_wrong_answers.py`` runs the real test
cell after it and requires the cell to fail. The comment above each group says which
part of the test catches each mistake (``visible`` or ``hidden``). The library shortcuts
call what ``movierec.preprocessing`` exports (the towers, their layers and their static
helpers) in the way a student looking for a one-liner would.
"""

from exercise_harness import WrongAnswer

_NORMALIZER = ("fit_timestamp_normalizer", "test_fit_timestamp_normalizer")
_BUCKETS = ("fit_time_buckets", "test_fit_time_buckets")
_CLOCK = ("hour_of_day_features", "test_hour_of_day_features")
_ID = ("make_id_embedding", "test_make_id_embedding")
_MAX = ("masked_max", "test_masked_max")
_TITLE = ("build_title_encoder", "test_build_title_encoder")
_MULTI_HOT = ("genres_multi_hot", "test_genres_multi_hot")
_TOWER = ("build_user_tower", "test_build_user_tower")

# Exercise 1, fit_timestamp_normalizer (2 points).
NORMALIZER = [
    # visible: never adapted, so mean 0 / variance 1 and the raw seconds come out
    WrongAnswer(*_NORMALIZER, "layer created but never adapted", """
def fit_timestamp_normalizer(timestamps):
    return tf.keras.layers.Normalization(axis=None)
"""),
    # visible: the standard deviation where the variance belongs, so the std is sqrt(sigma)
    WrongAnswer(*_NORMALIZER, "standard deviation passed as the variance", """
def fit_timestamp_normalizer(timestamps):
    values = np.asarray(timestamps, dtype=np.float64)
    return tf.keras.layers.Normalization(axis=None, mean=values.mean(), variance=values.std())
"""),
    # visible: library shortcuts — the session query tower's z-score layers (time, or age fed the
    # timestamps) hold the right mean and variance, but they were never adapted
    WrongAnswer(*_NORMALIZER, "library shortcut: the session query tower's time z-score", """
from movierec.preprocessing import QueryTower

def fit_timestamp_normalizer(timestamps):
    seconds = np.asarray(timestamps, dtype=np.float64)
    return QueryTower(np.array([b"u"]), seconds, seconds, np.array([b"x"]), time_features="session").time_zscore
"""),
    WrongAnswer(*_NORMALIZER, "library shortcut: the query tower's age z-score fed the timestamps", """
from movierec.preprocessing import QueryTower

def fit_timestamp_normalizer(timestamps):
    seconds = np.asarray(timestamps, dtype=np.float64)
    return QueryTower(np.array([b"u"]), None, seconds, np.array([b"x"]), time_features="none").age_zscore
"""),
    # hidden: a layer that standardises each batch with its own statistics
    WrongAnswer(*_NORMALIZER, "each batch standardised with its own mean and std", """
class _BatchZ(tf.keras.layers.Normalization):
    def call(self, inputs):
        inputs = tf.cast(inputs, tf.float64)
        return (inputs - tf.reduce_mean(inputs)) / tf.math.reduce_std(inputs)

def fit_timestamp_normalizer(timestamps):
    layer = _BatchZ(axis=None)
    layer.adapt(np.asarray(timestamps, dtype=np.float64))
    return layer
"""),
]

# Exercise 2, fit_time_buckets (2 points).
BUCKETS = [
    # visible: interpolated boundaries (18, 36, ... on 0..90) where the exercise wants sorted values
    WrongAnswer(*_BUCKETS, "library shortcut: the session query tower's quantile buckets", """
from movierec.preprocessing import QueryTower

def fit_time_buckets(timestamps, num_buckets):
    seconds = np.asarray(timestamps, dtype=np.float64)
    tower = QueryTower(np.array([b"u"]), seconds, seconds, np.array([b"x"]),
                       time_features="session", time_buckets=num_buckets)
    return tower.time_buckets
"""),
    # visible: the same interpolation written by hand
    WrongAnswer(*_BUCKETS, "np.quantile with its default (linear) interpolation", """
def fit_time_buckets(timestamps, num_buckets):
    values = np.asarray(timestamps, dtype=np.float64)
    boundaries = np.quantile(values, np.linspace(0.0, 1.0, num_buckets + 1)[1:-1])
    return tf.keras.layers.Discretization(bin_boundaries=boundaries.tolist())
"""),
    # visible: adapt's approximate sketch (bucket shares and boundaries)
    WrongAnswer(*_BUCKETS, "Discretization(num_bins=...) adapted with the default epsilon", """
def fit_time_buckets(timestamps, num_buckets):
    layer = tf.keras.layers.Discretization(num_bins=num_buckets)
    layer.adapt(np.asarray(timestamps, dtype=np.float64))
    return layer
"""),
    # visible: the timestamps not sorted first
    WrongAnswer(*_BUCKETS, "positions read from the unsorted array", """
def fit_time_buckets(timestamps, num_buckets):
    values = np.asarray(timestamps, dtype=np.float64)
    boundaries = np.unique(values[np.arange(1, num_buckets) * len(values) // num_buckets])
    return tf.keras.layers.Discretization(bin_boundaries=boundaries.tolist())
"""),
    # hidden: repeated boundaries kept (empty buckets, shifted ids)
    WrongAnswer(*_BUCKETS, "repeated boundaries not removed", """
def fit_time_buckets(timestamps, num_buckets):
    values = np.sort(np.asarray(timestamps, dtype=np.float64))
    boundaries = values[np.arange(1, num_buckets) * len(values) // num_buckets]
    return tf.keras.layers.Discretization(bin_boundaries=boundaries.tolist())
"""),
    # hidden: np.quantile(method="higher"), equal to the rule only when n divides evenly
    WrongAnswer(*_BUCKETS, "np.quantile(method='higher')", """
def fit_time_buckets(timestamps, num_buckets):
    values = np.asarray(timestamps, dtype=np.float64)
    boundaries = np.unique(np.quantile(values, np.linspace(0.0, 1.0, num_buckets + 1)[1:-1], method="higher"))
    return tf.keras.layers.Discretization(bin_boundaries=boundaries.tolist())
"""),
]

# Exercise 3, hour_of_day_features (1 point).
CLOCK = [
    # visible: float32 values (exactness to 1e-12)
    WrongAnswer(*_CLOCK, "library shortcut: QueryTower._clock on the shifted timestamps", """
from movierec.preprocessing import QueryTower

def hour_of_day_features(timestamps, utc_offset_hours):
    local = np.asarray(timestamps, dtype=np.int64) + int(round(utc_offset_hours * 3600))
    return QueryTower._clock(tf.constant(local)).numpy()[:, :2]
"""),
    # visible: the offset subtracted (UTC-6 test)
    WrongAnswer(*_CLOCK, "offset applied in the wrong direction", """
def hour_of_day_features(timestamps, utc_offset_hours):
    local = np.asarray(timestamps, dtype=np.float64) - utc_offset_hours * 3600.0
    angle = 2.0 * np.pi * np.mod(local, 86_400.0) / 86_400.0
    return np.stack([np.sin(angle), np.cos(angle)], axis=1)
"""),
    # visible: columns swapped (midnight is [1, 0])
    WrongAnswer(*_CLOCK, "cos and sin swapped", """
def hour_of_day_features(timestamps, utc_offset_hours):
    local = np.asarray(timestamps, dtype=np.float64) + utc_offset_hours * 3600.0
    angle = 2.0 * np.pi * np.mod(local, 86_400.0) / 86_400.0
    return np.stack([np.cos(angle), np.sin(angle)], axis=1)
"""),
    # visible: whole hours only (23:59:59 lands on 23:00, far from midnight)
    WrongAnswer(*_CLOCK, "the hour rounded down before the angle", """
def hour_of_day_features(timestamps, utc_offset_hours):
    local = np.asarray(timestamps, dtype=np.float64) + utc_offset_hours * 3600.0
    hour = np.floor(np.mod(local, 86_400.0) / 3600.0)
    angle = 2.0 * np.pi * hour / 24.0
    return np.stack([np.sin(angle), np.cos(angle)], axis=1)
"""),
    # hidden: the half hour of UTC+5:30 lost
    WrongAnswer(*_CLOCK, "offset truncated to whole hours", """
def hour_of_day_features(timestamps, utc_offset_hours):
    local = np.asarray(timestamps, dtype=np.float64) + int(utc_offset_hours) * 3600.0
    angle = 2.0 * np.pi * np.mod(local, 86_400.0) / 86_400.0
    return np.stack([np.sin(angle), np.cos(angle)], axis=1)
"""),
]

# Exercise 4, make_id_embedding (2 points).
ID = [
    # visible: sorted vocabulary and one OOV index
    WrongAnswer(*_ID, "library shortcut: the id-only query tower's lookup and embedding", """
from movierec.preprocessing import QueryTower

def make_id_embedding(vocabulary, embedding_dim, num_oov_indices):
    tower = QueryTower(np.asarray(vocabulary), use_features=False, embedding_dim=embedding_dim)
    return tf.keras.Sequential([tower.user_lookup, tower.user_embedding])
"""),
    # visible: num_oov_indices ignored
    WrongAnswer(*_ID, "one OOV index whatever num_oov_indices says", """
def make_id_embedding(vocabulary, embedding_dim, num_oov_indices):
    lookup = tf.keras.layers.StringLookup(vocabulary=np.asarray(vocabulary), mask_token=None)
    return tf.keras.Sequential([lookup, tf.keras.layers.Embedding(lookup.vocabulary_size(), embedding_dim)])
"""),
    # visible: the mask token shifts every index by one
    WrongAnswer(*_ID, "a mask token reserved as well", """
def make_id_embedding(vocabulary, embedding_dim, num_oov_indices):
    lookup = tf.keras.layers.StringLookup(vocabulary=np.asarray(vocabulary), mask_token="",
                                          num_oov_indices=num_oov_indices)
    return tf.keras.Sequential([lookup, tf.keras.layers.Embedding(lookup.vocabulary_size(), embedding_dim)])
"""),
    # visible: rows for the vocabulary plus one OOV row only
    WrongAnswer(*_ID, "Embedding with len(vocabulary) + 1 rows", """
def make_id_embedding(vocabulary, embedding_dim, num_oov_indices):
    lookup = tf.keras.layers.StringLookup(vocabulary=np.asarray(vocabulary), mask_token=None,
                                          num_oov_indices=num_oov_indices)
    return tf.keras.Sequential([lookup, tf.keras.layers.Embedding(len(vocabulary) + 1, embedding_dim)])
"""),
    # visible: vocabulary sorted (np.unique) instead of kept in the order given
    WrongAnswer(*_ID, "vocabulary sorted with np.unique", """
def make_id_embedding(vocabulary, embedding_dim, num_oov_indices):
    lookup = tf.keras.layers.StringLookup(vocabulary=np.unique(vocabulary), mask_token=None,
                                          num_oov_indices=num_oov_indices)
    return tf.keras.Sequential([lookup, tf.keras.layers.Embedding(lookup.vocabulary_size(), embedding_dim)])
"""),
]

# Exercise 5, masked_max (2 points).
MAX = [
    # visible: an average is not a maximum
    WrongAnswer(*_MAX, "library shortcut: CandidateTower._mean_over (the masked average)", """
from movierec.preprocessing import CandidateTower

def masked_max(vectors, mask):
    return CandidateTower._mean_over(vectors, mask)
"""),
    # visible: padding multiplied by zero, so a padded 0 beats negative values
    WrongAnswer(*_MAX, "padding multiplied by zero before the maximum", """
def masked_max(vectors, mask):
    return tf.reduce_max(vectors * tf.cast(mask, vectors.dtype)[:, :, tf.newaxis], axis=1)
"""),
    # visible: the mask ignored
    WrongAnswer(*_MAX, "plain reduce_max (mask ignored)", """
def masked_max(vectors, mask):
    return tf.reduce_max(vectors, axis=1)
"""),
    # visible: all-padding rows left at the dtype's minimum
    WrongAnswer(*_MAX, "all-padding rows not set to zero", """
def masked_max(vectors, mask):
    return tf.reduce_max(tf.where(mask[:, :, tf.newaxis], vectors, vectors.dtype.min), axis=1)
"""),
    # hidden: a 'large' negative constant that real values can be below
    WrongAnswer(*_MAX, "padding pushed down by a fixed -1e9", """
def masked_max(vectors, mask):
    keep = tf.cast(mask, vectors.dtype)[:, :, tf.newaxis]
    best = tf.reduce_max(vectors + (keep - 1.0) * 1e9, axis=1)
    return tf.where(tf.reduce_any(mask, axis=1)[:, tf.newaxis], best, tf.zeros_like(best))
"""),
]

# Exercise 6, build_title_encoder (2 points).
TITLE = [
    # visible: the library's title layers have no mask_zero, so the pooling averages the padding in
    WrongAnswer(*_TITLE, "library shortcut: the candidate tower's title layers in a Sequential", """
from movierec.preprocessing import CandidateTower

def build_title_encoder(titles, embedding_dim):
    tower = CandidateTower(np.array([b"1"]), np.asarray(titles), title_dim=embedding_dim)
    return tf.keras.Sequential([tower.title_tokens, tower.title_embedding, tf.keras.layers.GlobalAveragePooling1D()])
"""),
    # visible: the library's layers with its masked average; no Embedding with mask_zero=True
    WrongAnswer(*_TITLE, "library shortcut: the candidate tower's title layers and _mean_over", """
from movierec.preprocessing import CandidateTower

def build_title_encoder(titles, embedding_dim):
    tower = CandidateTower(np.array([b"1"]), np.asarray(titles), title_dim=embedding_dim)

    class Encoder(tf.keras.Model):
        def __init__(self):
            super().__init__()
            self.tokens, self.words = tower.title_tokens, tower.title_embedding

        def call(self, titles):
            tokens = self.tokens(titles)
            return CandidateTower._mean_over(self.words(tokens), tokens != 0)

    return Encoder()
"""),
    # visible: no mask, so the padding index's vector is averaged in
    WrongAnswer(*_TITLE, "Embedding without mask_zero", """
def build_title_encoder(titles, embedding_dim):
    vectorizer = tf.keras.layers.TextVectorization()
    vectorizer.adapt(titles)
    return tf.keras.Sequential([
        vectorizer,
        tf.keras.layers.Embedding(vectorizer.vocabulary_size(), embedding_dim),
        tf.keras.layers.GlobalAveragePooling1D(),
    ])
"""),
    # visible: the mask produced but dropped by a Lambda mean
    WrongAnswer(*_TITLE, "mask_zero=True but a plain mean that drops the mask", """
def build_title_encoder(titles, embedding_dim):
    vectorizer = tf.keras.layers.TextVectorization()
    vectorizer.adapt(titles)
    return tf.keras.Sequential([
        vectorizer,
        tf.keras.layers.Embedding(vectorizer.vocabulary_size(), embedding_dim, mask_zero=True),
        tf.keras.layers.Lambda(lambda x: tf.reduce_mean(x, axis=1)),
    ])
"""),
    # visible: fixed-length output padded to 20, averaged without a mask (no mask_zero Embedding)
    WrongAnswer(*_TITLE, "output_sequence_length=20 without a mask", """
def build_title_encoder(titles, embedding_dim):
    vectorizer = tf.keras.layers.TextVectorization(output_sequence_length=20)
    vectorizer.adapt(titles)
    return tf.keras.Sequential([
        vectorizer,
        tf.keras.layers.Embedding(vectorizer.vocabulary_size(), embedding_dim),
        tf.keras.layers.GlobalAveragePooling1D(),
    ])
"""),
]

# Exercise 7, genres_multi_hot (1 point).
MULTI_HOT = [
    # visible: labels shifted by one and column 0 kept
    WrongAnswer(*_MULTI_HOT, "shifted labels, padding column not dropped", """
def genres_multi_hot(genres, num_genres):
    encode = tf.keras.layers.CategoryEncoding(num_tokens=num_genres, output_mode="multi_hot")
    return encode(tf.cast(genres, tf.int32) + 1)
"""),
    # visible: one_hot summed over the wrong axis
    WrongAnswer(*_MULTI_HOT, "maximum over the batch axis", """
def genres_multi_hot(genres, num_genres):
    return tf.reduce_max(tf.one_hot(tf.cast(genres, tf.int32), depth=num_genres), axis=0)
"""),
    # hidden: counts instead of presence
    WrongAnswer(*_MULTI_HOT, "one_hot summed (a genre listed twice gives 2)", """
def genres_multi_hot(genres, num_genres):
    return tf.reduce_sum(tf.one_hot(tf.cast(genres, tf.int32), depth=num_genres), axis=1)
"""),
    # hidden: an integer result
    WrongAnswer(*_MULTI_HOT, "int32 instead of float32", """
def genres_multi_hot(genres, num_genres):
    return tf.reduce_max(tf.one_hot(tf.cast(genres, tf.int32), depth=num_genres, dtype=tf.int32), axis=1)
"""),
]

_TOWER_HEAD = '''
def build_user_tower(train_features, embedding_dim):
    class UserTower(tf.keras.Model):
        def __init__(self):
            super().__init__()
            users = np.unique(train_features["user_id"].numpy())
            occupations = np.unique(train_features["user_occupation_text"].numpy())
            self.user_lookup = tf.keras.layers.StringLookup(vocabulary=users, mask_token=None)
            self.user_embedding = tf.keras.layers.Embedding(self.user_lookup.vocabulary_size(), embedding_dim)
            self.occupation_lookup = tf.keras.layers.StringLookup(vocabulary=occupations, mask_token=None)
            self.occupation_embedding = tf.keras.layers.Embedding(self.occupation_lookup.vocabulary_size(), 8)
'''


def _tower(normalizer: str, call: str, projection: str = "tf.keras.layers.Dense(embedding_dim)") -> str:
    return (_TOWER_HEAD + normalizer + f"""
            self.projection = {projection}

        def call(self, features):
{call}
            return self.projection(tf.concat(parts, axis=1))

    return UserTower()
""")


_ADAPTED = """
            self.time_normalizer = tf.keras.layers.Normalization(axis=None)
            self.time_normalizer.adapt(train_features["timestamp"].numpy().astype(np.float64))
"""

_CALL = """            time = self.time_normalizer(tf.cast(features["timestamp"], tf.float64))
            parts = [
                self.user_embedding(self.user_lookup(features["user_id"])),
                tf.reshape(tf.cast(time, tf.float32), (-1, 1)),
                self.occupation_embedding(self.occupation_lookup(features["user_occupation_text"])),
            ]"""

# Exercise 8, build_user_tower (2 points).
TOWER = [
    # visible: the library tower reads raw_user_age, which a three-feature batch lacks
    WrongAnswer(*_TOWER, "library shortcut: build_query_tower (session time features)", """
from movierec.preprocessing import build_query_tower

def build_user_tower(train_features, embedding_dim):
    return build_query_tower(train_features, embedding_dim=embedding_dim, time_features="session")
"""),
    # visible: the library tower wrapped so that it accepts the three features (clock time is not linear)
    WrongAnswer(*_TOWER, "library shortcut: QueryTower fed default age and gender", """
from movierec.preprocessing import QueryTower

def build_user_tower(train_features, embedding_dim):
    tower = QueryTower(train_features["user_id"].numpy(), train_features["timestamp"].numpy(),
                       train_features["raw_user_age"].numpy(), train_features["user_occupation_text"].numpy(),
                       embedding_dim=embedding_dim, time_features="session", time_buckets=10)

    class Wrapped(tf.keras.Model):
        def __init__(self):
            super().__init__()
            self.tower = tower

        def call(self, features):
            batch = tf.shape(features["user_id"])[0]
            defaults = {"raw_user_age": tf.fill([batch], 30.0), "user_gender": tf.fill([batch], False)}
            return self.tower({**features, **defaults})

    return Wrapped()
"""),
    # visible: the timestamp ignored (only user and occupation)
    WrongAnswer(*_TOWER, "timestamp left out of the concatenation", _tower(_ADAPTED, """            parts = [
                self.user_embedding(self.user_lookup(features["user_id"])),
                self.occupation_embedding(self.occupation_lookup(features["user_occupation_text"])),
            ]""")),
    # visible: an activation on the projection makes the time response non-linear
    WrongAnswer(*_TOWER, "ReLU on the output projection", _tower(
        _ADAPTED, _CALL, projection='tf.keras.layers.Dense(embedding_dim, activation="relu")')),
    # visible: occupation looked up but not used
    WrongAnswer(*_TOWER, "occupation ignored", _tower(_ADAPTED, """
            time = self.time_normalizer(tf.cast(features["timestamp"], tf.float64))
            parts = [
                self.user_embedding(self.user_lookup(features["user_id"])),
                tf.reshape(tf.cast(time, tf.float32), (-1, 1)),
            ]""")),
    # visible: raw seconds (~9e8) swamp the occupation's contribution in float32;
    # hidden: the Normalization's mean and variance must be the training split's
    WrongAnswer(*_TOWER, "Normalization never adapted", _tower("""
            self.time_normalizer = tf.keras.layers.Normalization(axis=None, mean=0.0, variance=1.0)
""", _CALL)),
]

WRONG_ANSWERS = NORMALIZER + BUCKETS + CLOCK + ID + MAX + TITLE + MULTI_HOT + TOWER
