# DO NOT EDIT — generated from solutions/01_intro.py by `python -m grader build`: edit the lesson instead.
"""Building blocks from lesson 01_intro: Lesson 01 — What is a recommender?.

The cells tagged ``export`` in solutions/01_intro.py, in lesson order; each block
names the section of the lesson that explains it.
"""

import numpy as np


# --- from solutions/01_intro.py, section: 8. Learning embeddings from ratings: matrix factorization
def make_low_rank_ratings(
    n_users: int = 60,
    n_items: int = 40,
    rank: int = 3,
    density: float = 0.5,
    noise: float = 0.1,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A toy rating matrix with a known low-rank structure, for testing factorizations.

    The "true" ratings are ``A @ B.T`` for random Gaussian factors of the given rank,
    scaled so entries have unit variance. Each entry is observed with probability
    ``density``; observed entries get Gaussian noise of standard deviation ``noise``.

    Returns:
        ``(ratings, mask, truth)``: ``ratings`` is ``(n_users, n_items)`` with ``NaN``
        where unobserved, ``mask`` is the boolean matrix of observed entries, and
        ``truth`` is the noise-free matrix (known only because the data is synthetic).
    """
    rng = np.random.default_rng(seed)
    scale = rank**-0.25  # each entry of A @ B.T then has variance 1
    users = rng.normal(scale=scale, size=(n_users, rank))
    items = rng.normal(scale=scale, size=(n_items, rank))
    truth = users @ items.T
    mask = rng.random((n_users, n_items)) < density
    noisy = truth + noise * rng.normal(size=truth.shape)
    ratings = np.where(mask, noisy, np.nan)
    return ratings, mask, truth


def split_observed(mask: np.ndarray, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split the observed entries of ``mask`` at random into a train and a test mask.

    Each observed entry goes to the test mask with probability ``test_fraction``; the
    two masks are disjoint and together equal ``mask``.
    """
    rng = np.random.default_rng(seed)
    mask = np.asarray(mask, dtype=bool)
    to_test = rng.random(mask.shape) < test_fraction
    return mask & ~to_test, mask & to_test


def masked_rmse(ratings: np.ndarray, predictions: np.ndarray, mask: np.ndarray) -> float:
    """Root-mean-square error between ``ratings`` and ``predictions`` over ``mask`` only."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError("the mask selects no entries, so the RMSE is undefined")
    errors = np.asarray(ratings, dtype=float)[mask] - np.asarray(predictions, dtype=float)[mask]
    return float(np.sqrt(np.mean(errors**2)))


def mf_objective(ratings: np.ndarray, mask: np.ndarray, U: np.ndarray, V: np.ndarray, reg: float) -> float:
    """The regularized matrix-factorization loss on the observed entries.

    ``sum over observed (u, i) of (r_ui - U[u] @ V[i]) ** 2 + reg * (|U|_F^2 + |V|_F^2)``.
    Unobserved entries (which may hold NaN) do not contribute.
    """
    mask = np.asarray(mask, dtype=bool)
    residual = np.where(mask, np.asarray(ratings, dtype=float), 0.0) - np.where(mask, U @ V.T, 0.0)
    return float(np.sum(residual**2) + reg * (np.sum(U**2) + np.sum(V**2)))
