# %% [markdown]
# # Lesson 01 — What is a recommender?
#
# This course ends with a working movie recommender: a retrieval model and a ranking
# model trained with TensorFlow Recommenders on MovieLens, an approximate-nearest-neighbour
# index, and a model server answering requests. Before any of that, this lesson builds
# the ideas those pieces rest on, with nothing but NumPy and a few dozen lines of code
# per idea:
#
# * what problem a recommender solves, and the words the field uses for it;
# * why real systems work in stages (retrieval, then ranking, then re-ranking);
# * where scores come from: content features or the behaviour of other users;
# * embeddings, and how the choice between a dot product and a cosine changes who wins;
# * matrix factorization, the model that learns embeddings from a table of ratings.
#
# You will write five small functions. Each one has a docstring that states exactly what
# to return, a hint, and a test cell right below it. The whole lesson runs in a few
# seconds on a laptop.

# %% tags=["setup"]
from movierec.setup import setup_lesson

setup_lesson(tensorflow=False)

# %%
import math
import warnings

import matplotlib.pyplot as plt
import numpy as np

from movierec.report import record

# %% [markdown]
# ## 1. Too much to browse
#
# A shop with forty books needs no recommender: a visitor can look at every spine. A
# streaming service with tens of thousands of titles, a video site with billions of
# clips or a marketplace with millions of products cannot be browsed; a person will look
# at a few dozen things at most before giving up. Search helps only when people know
# what they want and can put it into words. A **recommender system** answers the other
# question, the one nobody typed: *out of everything we have, which few things should this
# person see right now?*
#
# Catalogues also have a particular shape. Sort items by how often they are consumed and
# the curve drops steeply: a small **head** of hits collects most of the attention, and a
# long **tail** of items is each wanted by only a few people. A bestseller shelf serves
# the head well and the tail not at all. A personal recommender can do better, because a
# tail item that almost nobody wants may be exactly right for one particular user
# (Anderson, 2006). Lesson 02 measures this curve on MovieLens.
#
# The stakes are high for the businesses involved: Netflix reported that recommendations
# influence the choice of about 80% of the hours streamed on its service
# (Gomez-Uribe & Hunt, 2015).
#
# **Think about it:** in an online bookshop, list two situations where search works
# well and two where only a recommender can help.

# %% [markdown]
# ## 2. Queries, candidates and context
#
# Recommenders share a small vocabulary, and the rest of the course uses it.
#
# * The **query** is whatever we are recommending *for*. Most often it is a user: their
#   id and what we know about their past (ratings, clicks, purchases).
# * The **context** is what we know about the moment of the request: time of day,
#   device, the page being viewed, the search words typed. Context is usually folded
#   into the query. On a "more like this" shelf the query is an *item* (the film on the
#   page), not a user.
# * The **candidates** are the things we may recommend: movies, songs, products, news
#   stories. The set of all candidates is the **catalogue** (or corpus).
#
# With these words, every recommender in this course does two things: it computes a
# **score** $s(q, c)$ saying how well candidate $c$ suits query $q$, and it **selects**
# the few candidates with the best scores. Learning a good $s$ is a machine-learning
# problem; selecting the best few out of millions, fast, is a search problem. Both halves
# matter, and the course spends lessons on each.

# %% [markdown]
# ## 3. Retrieval, ranking, re-ranking
#
# A precise scoring model can be slow: a deep network that reads dozens of features of
# the user and the movie might need a millisecond per pair. A millisecond times a million
# candidates is about a quarter of an hour, for one page view. Production systems therefore
# chain stages that get more expensive as the candidate list gets shorter:
#
# ```mermaid
# flowchart LR
#     A["Catalogue<br/>millions of items"] --> B["Retrieval<br/>cheap score for every item"]
#     B -->|"hundreds"| C["Ranking<br/>rich model, many features"]
#     C -->|"dozens"| D["Re-ranking<br/>diversity, freshness, business rules"]
#     D -->|"a handful"| E["Shown to the user"]
# ```
#
# * **Retrieval** (also called candidate generation) must touch every item, so its score
#   has to be cheap: typically a dot product between a query vector and an item vector,
#   with the best few hundred found by a (possibly approximate) nearest-neighbour search.
#   Recall matters most here: a good movie dropped at this stage can never come back.
# * **Ranking** re-scores only the survivors, so it can afford a bigger model and more
#   features, such as the time of day or how the user rated similar films. It is judged
#   on how well it orders the short list.
# * **Re-ranking** applies what a single score cannot express: do not show five sequels
#   of the same film, remove what the user already watched, promote new releases,
#   respect regional availability.
#
# YouTube's recommender is a well-known two-network example of this design: a candidate
# generation network narrows millions of videos to hundreds, and a ranking network orders
# those (Covington et al., 2016). Lessons 04 and 05 of this course build the same pair
# for movies.

# %% [markdown]
# ## 4. Where scores come from
#
# There are two broad sources of evidence for $s(q, c)$.
#
# **Content-based filtering** describes every item by its own features (genres, cast,
# words in the synopsis, price) and recommends items whose features resemble what the
# user liked before. It works for a brand-new item on day one, because features exist
# before anyone has interacted with the item. Its limits: it only knows what the features
# say, and it rarely surprises, since it keeps recommending more of the same.
#
# **Collaborative filtering** ignores what the items *are* and looks at who interacted
# with what. If many people who loved film A also loved film B, then a new fan of A
# should hear about B, even if the two share no genre or actor. It discovers tastes that no
# hand-made feature captures, but it needs interaction data: a new item or a new user
# with no history is a **cold start** problem. Most production systems mix both: id
# embeddings learned collaboratively, plus content features that still say something
# about items and users with little or no history.
#
# ### Explicit and implicit feedback
#
# Users tell us what they like in two ways. **Explicit feedback** is a deliberate judgement:
# a one-to-five-star rating or a thumbs up. It has a direction (people say what they
# dislike too) but is scarce, since most people rate almost nothing. **Implicit
# feedback** is behaviour: plays, clicks, purchases, watch time. It is plentiful but
# one-sided: a missing click may mean "not interested" or simply "never saw it"
# (Hu, Koren & Volinsky, 2008). MovieLens, our data set, holds explicit star ratings. A
# retrieval model often uses them in the implicit way, treating "this user rated this
# movie" as a positive signal regardless of the number of stars.
#
# **Think about it:** a music app records that a user skipped a song after four seconds.
# Is that explicit or implicit feedback, and is it positive or negative?

# %% [markdown]
# ## 5. Embeddings and affinity
#
# Both kinds of filtering can be phrased the same way: map every query and every
# candidate to a vector in the same space $\mathbb{R}^d$, an **embedding**, and let the
# score depend on how the vectors relate. Two scores dominate practice. The **dot
# product** (or inner product)
#
# $$
# s_{\text{dot}}(\mathbf{q}, \mathbf{c}) = \mathbf{q}^\top \mathbf{c} = \sum_{j=1}^{d} q_j c_j
# $$
#
# and the **cosine similarity**, the dot product of the two directions with the lengths
# divided out,
#
# $$
# s_{\cos}(\mathbf{q}, \mathbf{c}) = \frac{\mathbf{q}^\top \mathbf{c}}{\lVert \mathbf{q} \rVert \, \lVert \mathbf{c} \rVert} = \cos\theta .
# $$
#
# The cosine lies in $[-1, 1]$ and depends only on the angle $\theta$ between the
# vectors; the dot product equals
# $\lVert \mathbf{q} \rVert \, \lVert \mathbf{c} \rVert \cos\theta$, so a longer candidate
# vector gets a proportionally larger score. The cosine is undefined when either vector
# is zero; in this course we define it as $0$ there (a zero vector says nothing about
# direction).
#
# To make this concrete, here is a toy catalogue of six movies with *hand-written*
# two-dimensional embeddings. Axis 0 measures how much of an action film a movie is,
# axis 1 how much of a romance. The lengths are chosen to mimic what trained models
# tend to learn: widely watched films get longer vectors (section 7 explains why). A
# real model learns such vectors from data, with 32 or more dimensions that have no
# names; we will learn some in section 8.

# %%
TOY_TITLES = [
    "Star Wars (1977)",
    "Die Hard (1988)",
    "Princess Bride, The (1987)",
    "Speed (1994)",
    "Titanic (1997)",
    "Sleepless in Seattle (1993)",
]
TOY_MOVIES = np.array(
    [
        [2.9, 0.5],  # a blockbuster: long vector, mostly action
        [1.4, 0.1],
        [0.7, 0.7],  # a smaller film pointing almost exactly where our user points
        [1.2, 0.5],
        [0.5, 2.3],  # a romance blockbuster
        [0.2, 1.2],
    ]
)
TOY_USER = np.array([1.0, 0.9])  # likes action and romance about equally

for title, vec in zip(TOY_TITLES, TOY_MOVIES):
    print(f"{title:<28} vector={vec}  length={np.linalg.norm(vec):.2f}")

# %%
# Two labels would sit on other arrows at the default offset, so they move aside.
label_offsets = {"Princess Bride, The (1987)": (-0.05, 0.05, "right"), "Speed (1994)": (0.05, -0.12, "left")}
fig, ax = plt.subplots(figsize=(7, 4.5))
for title, (x, y) in zip(TOY_TITLES, TOY_MOVIES):
    ax.annotate("", xy=(x, y), xytext=(0, 0), arrowprops={"arrowstyle": "->", "color": "tab:blue"})
    dx, dy, ha = label_offsets.get(title, (0.04, 0.04, "left"))
    ax.text(x + dx, y + dy, title, fontsize=8, color="tab:blue", ha=ha)
ax.annotate("", xy=tuple(TOY_USER), xytext=(0, 0), arrowprops={"arrowstyle": "->", "color": "tab:red", "lw": 2})
ax.text(TOY_USER[0] - 0.6, TOY_USER[1] + 0.08, "query: our user", color="tab:red", fontsize=9)
ax.set_xlim(-0.9, 3.4)
ax.set_ylim(-0.1, 2.6)
ax.set_aspect("equal")
ax.set_xlabel("axis 0: action")
ax.set_ylabel("axis 1: romance")
ax.set_title("A toy catalogue: movies and one user in the same 2-d space")
plt.show()

# %% [markdown]
# ### Exercise 1 (2 points): `affinity_scores`
#
# Write the scoring half of a recommender: score one query vector against every row of a
# candidate matrix, with either metric. Retrieval systems do exactly this, for millions
# of rows at once, so write it without a Python loop over candidates.
#
# **Hint:** `candidates @ query` gives all $n$ dot products in one call, and
# `np.linalg.norm(candidates, axis=1)` gives all $n$ lengths. For the cosine, divide only
# where the product of the two lengths is positive and leave the other scores at zero:
# `np.divide(a, b, out=np.zeros_like(a), where=b > 0)` does that without a warning.
# Check the inputs first, so a wrong call fails with a message instead of a confusing
# broadcasting error.

# %% nbgrader={"grade": false, "grade_id": "affinity_scores", "locked": false, "schema_version": 3, "solution": true}
def affinity_scores(query: np.ndarray, candidates: np.ndarray, metric: str = "dot") -> np.ndarray:
    """Score one query embedding against every candidate embedding.

    Args:
        query: shape ``(d,)``, the query's embedding (array-like is fine).
        candidates: shape ``(n, d)``, one candidate embedding per row.
        metric: ``"dot"`` for the inner product, ``"cosine"`` for the cosine similarity.

    Returns:
        A float array of shape ``(n,)``; entry ``i`` scores ``candidates[i]``.
        For ``"cosine"``, a candidate scores ``0.0`` when it or the query is the zero
        vector (no NaN, no warning), because a zero vector has no direction.

    Raises:
        ValueError: if ``metric`` is not ``"dot"`` or ``"cosine"``, if ``query`` is not
            1-d or ``candidates`` not 2-d, or if their dimensions ``d`` differ.
    """
    ### BEGIN SOLUTION
    if metric not in ("dot", "cosine"):
        raise ValueError(f"unknown metric {metric!r}: use 'dot' or 'cosine'")
    query = np.asarray(query, dtype=float)
    candidates = np.asarray(candidates, dtype=float)
    if query.ndim != 1 or candidates.ndim != 2:
        raise ValueError(
            f"expected a 1-d query and a 2-d candidate matrix, got shapes {query.shape} and {candidates.shape}"
        )
    if candidates.shape[1] != query.shape[0]:
        raise ValueError(
            f"query has {query.shape[0]} dimensions but candidates have {candidates.shape[1]}"
        )
    dots = candidates @ query
    if metric == "dot":
        return dots
    lengths = np.linalg.norm(candidates, axis=1) * np.linalg.norm(query)
    return np.divide(dots, lengths, out=np.zeros_like(dots), where=lengths > 0)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_affinity_scores", "locked": true, "points": 2, "schema_version": 3, "solution": false}
from movierec.checks import close as _close, equal as _equal, finite as _finite, ints as _ints, plain as _plain
_q = np.array([1.0, 0.0])
_c = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
_dot = affinity_scores(_q, _c, metric="dot")
assert isinstance(_dot, np.ndarray) and _dot.shape == (3,), f"expected an array of shape (3,), got {type(_dot).__name__} {np.shape(_dot)}"
assert _close(_dot, [2.0, 0.0, 1.0]), f"dot scores of [1, 0] against [[2,0],[0,3],[1,1]] should be [2, 0, 1], got {_dot}"
assert _close(affinity_scores(_q, _c), _dot), "metric should default to 'dot'"
_cos = affinity_scores(_q, _c, metric="cosine")
assert _close(_cos, [1.0, 0.0, 1 / math.sqrt(2)]), f"cosine scores should be [1, 0, 0.7071] (lengths divided out), got {_cos}"
with warnings.catch_warnings(record=True) as _caught:
    warnings.simplefilter("always")
    _zero = affinity_scores(_q, np.array([[0.0, 0.0], [3.0, 0.0]]), metric="cosine")
assert not _caught, f"cosine with a zero candidate must not divide by zero; NumPy warned: {_caught[0].message if _caught else ''}"
assert _finite(_zero) and _close(_zero, [0.0, 1.0]), f"a zero candidate must score 0.0 under cosine, got {_zero}"
try:
    affinity_scores(_q, _c, metric="euclid")
except ValueError:
    pass
else:
    raise AssertionError("an unknown metric should raise ValueError")
try:
    affinity_scores(np.ones(3), _c)
except ValueError:
    pass
else:
    raise AssertionError("a 3-d query against 2-d candidates should raise ValueError")
print("affinity_scores: visible tests passed")
### BEGIN HIDDEN TESTS
_rng = np.random.default_rng(7)
_q = _rng.normal(size=5)
_c = _rng.normal(size=(40, 5))
_expected_dot = np.array([sum(a * b for a, b in zip(row, _q)) for row in _c])
assert _close(affinity_scores(_q, _c), _expected_dot), "dot scores disagree with a row-by-row sum of products"
_expected_cos = _expected_dot / (np.linalg.norm(_c, axis=1) * np.linalg.norm(_q))
_cos = affinity_scores(_q, _c, "cosine")
assert _close(_cos, _expected_cos), "cosine scores disagree with dot / (|q| |c|)"
assert np.all(np.abs(_cos) <= 1 + 1e-12), "cosine scores must lie in [-1, 1]"
_scale = _rng.uniform(0.1, 10.0, size=(40, 1))
assert _close(affinity_scores(_q, _c * _scale, "cosine"), _cos), "cosine must not change when candidates are rescaled by positive numbers"
assert _close(affinity_scores(3.0 * _q, _c, "cosine"), _cos), "cosine must not change when the query is rescaled"
assert _close(affinity_scores(list(_q), _c.tolist(), "dot"), _expected_dot), "plain Python lists should be accepted"
with warnings.catch_warnings(record=True) as _caught:
    warnings.simplefilter("always")
    _zq = affinity_scores(np.zeros(5), _c, "cosine")
assert not _caught, "cosine with a zero query must not divide by zero (NumPy warned)"
assert _close(_zq, 0.0), "a zero query must give cosine 0 for every candidate"
for _bad_q, _bad_c in [(np.ones((1, 5)), _c), (_q, _c[0]), (np.ones(4), _c)]:
    try:
        affinity_scores(_bad_q, _bad_c, "cosine")
    except ValueError:
        pass
    else:
        raise AssertionError(f"shapes {np.shape(_bad_q)} and {np.shape(_bad_c)} should raise ValueError")
### END HIDDEN TESTS

# %% [markdown]
# With the function in place, score our toy user against the six movies. The two
# columns disagree: which movie looks best depends on whether vector lengths count.

# %%
toy_dot = affinity_scores(TOY_USER, TOY_MOVIES, metric="dot")
toy_cos = affinity_scores(TOY_USER, TOY_MOVIES, metric="cosine")
print(f"{'movie':<28} {'dot':>6} {'cosine':>7}")
for title, d, c in zip(TOY_TITLES, toy_dot, toy_cos):
    print(f"{title:<28} {d:6.2f} {c:7.3f}")

# %% [markdown]
# ## 6. From scores to a list: top-$k$
#
# A score per candidate is not yet a recommendation; the user sees a short ordered list.
# Selecting the $k$ best of $n$ scores is the last step of retrieval, and the details
# matter more than they seem:
#
# * **Order:** best first, since position on the screen is what users react to.
# * **Ties:** equal scores are common (integer counts, identical untrained embeddings).
#   If ties are broken arbitrarily, the same request can return different lists, which
#   makes tests flaky and A/B comparisons noisy. We break ties by the lower id.
# * **Short catalogues:** asking for 10 items from a catalogue of 6 should return all
#   6, not fail.
#
# **Tip:** sorting all $n$ scores costs $O(n \log n)$. For a large catalogue,
# `np.argpartition` first isolates the $k$ best in $O(n)$ and only those $k$ need sorting.
# Lesson 06 goes much further and avoids scoring most candidates at all.
#
# ### Exercise 2 (2 points): `top_k`
#
# **Hint:** `np.argsort` sorts ascending; sorting `-scores` puts the best first. With
# `kind="stable"`, equal keys keep their original order, which is exactly "lower id
# first". Slicing past the end of an array is allowed in NumPy.

# %% nbgrader={"grade": false, "grade_id": "top_k", "locked": false, "schema_version": 3, "solution": true}
def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Ids (positions) of the ``k`` highest scores, best first.

    Args:
        scores: shape ``(n,)``, one score per candidate; candidate ``i`` has id ``i``.
        k: how many ids to return; must be positive.

    Returns:
        An integer array of ``min(k, n)`` distinct ids ordered by decreasing score.
        Equal scores are ordered by increasing id, so the result is deterministic.

    Raises:
        ValueError: if ``k <= 0``.
    """
    ### BEGIN SOLUTION
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    scores = np.asarray(scores, dtype=float)
    return np.argsort(-scores, kind="stable")[:k]
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_top_k", "locked": true, "points": 2, "schema_version": 3, "solution": false}
from movierec.checks import close as _close, equal as _equal, finite as _finite, ints as _ints, plain as _plain
_ids = top_k(np.array([0.1, 0.9, 0.5]), 2)
assert _ints(_ids) == [1, 2], f"top 2 of [0.1, 0.9, 0.5] should be ids [1, 2] (best first), got {[int(i) for i in _ids]}"
assert np.issubdtype(np.asarray(_ids).dtype, np.integer), "top_k should return integer ids, not scores"
_ids = top_k(np.array([1.0, 3.0, 3.0, 2.0, 3.0]), 4)
assert _ints(_ids) == [1, 2, 4, 3], f"ties must be broken by the lower id: expected [1, 2, 4, 3], got {[int(i) for i in _ids]}"
_ids = top_k(np.array([0.2, 0.4, 0.1]), 10)
assert _ints(_ids) == [1, 0, 2], f"k larger than n should return all n ids, best first; got {[int(i) for i in _ids]}"
try:
    top_k(np.array([0.2, 0.4]), 0)
except ValueError:
    pass
else:
    raise AssertionError("k = 0 should raise ValueError")
print("top_k: visible tests passed")
### BEGIN HIDDEN TESTS
_rng = np.random.default_rng(11)
for _n, _k in [(50, 7), (200, 200), (13, 1), (30, 45)]:
    _s = _rng.integers(0, 5, size=_n).astype(float)  # few distinct values: many ties
    _expected = sorted(range(_n), key=lambda i: (-_s[i], i))[:_k]
    _got = _ints(top_k(_s, _k))
    assert _got == _expected, f"n={_n}, k={_k}: result disagrees with sorting by (-score, id)"
_s = _rng.normal(size=20)
_before = _s.copy()
top_k(_s, 5)
assert _equal(_s, _before), "top_k must not modify the scores passed in"
assert _ints(top_k([0.5, -1.0, 2.0], 2)) == [2, 0], "a plain Python list of scores should work"
assert _ints(top_k(np.array([-3.0, -1.0, -2.0]), 3)) == [1, 2, 0], "negative scores: the highest (least negative) comes first"
try:
    top_k(_s, -2)
except ValueError:
    pass
else:
    raise AssertionError("negative k should raise ValueError")
### END HIDDEN TESTS

# %% [markdown]
# The two halves together make a complete, if tiny, retrieval step: score everything,
# keep the best three.

# %%
for metric in ("dot", "cosine"):
    ids = top_k(affinity_scores(TOY_USER, TOY_MOVIES, metric=metric), 3)
    print(f"top 3 by {metric:<6}: " + ", ".join(TOY_TITLES[i] for i in ids))

# %% [markdown]
# ## 7. Why vector lengths matter
#
# The two lists above differ at the top. By cosine, *The Princess Bride* wins: its
# vector points almost exactly where our user's does. By dot product, *Star Wars* wins:
# its direction is well off the user's (it is nearly all action), but its vector is about
# three times longer. *Titanic*, another long vector, jumps into the dot-product top
# three for the same reason.
#
# In trained models, length is not arbitrary. An item that appears in many training
# examples receives many gradient updates that all push its embedding towards the users
# who liked it, and its vector tends to grow; rarely seen items stay short. So **vector
# length behaves like popularity**, and the choice of score is a choice about
# popularity:
#
# * the **dot product** rewards popularity. That is often right (popular items are popular
#   for a reason, and a new user with a short history is best served by hits), but it
#   can let a few blockbusters crowd out everything else;
# * the **cosine** ignores it, so a niche film that fits a user's taste perfectly can win.
#   That helps the long tail but can surface obscure items on thin evidence.
#
# Nothing forces an all-or-nothing choice. A simple family of scores in between keeps the
# cosine and brings the lengths back with an exponent $\alpha$ (Google's recommendation
# course describes this modulation):
#
# $$
# s_\alpha(\mathbf{q}, \mathbf{c}) = \left(\lVert \mathbf{q} \rVert \, \lVert \mathbf{c} \rVert\right)^{\alpha} \cos\theta .
# $$
#
# At $\alpha = 0$ this is the cosine; at $\alpha = 1$ it is exactly the dot product;
# values in between damp the popularity effect, and $\alpha > 1$ exaggerates it.
#
# ### Exercise 3 (2 points): `norm_weighted_scores`
#
# Implement $s_\alpha$ for one query and a candidate matrix. The cell after the tests
# uses it to find the value of $\alpha$ at which our toy user's top movie switches from
# the niche film to the blockbuster.
#
# **Hint:** compute the dot products and the products of lengths
# $\ell_i = \lVert \mathbf{q} \rVert \, \lVert \mathbf{c}_i \rVert$ first. Since
# $\cos\theta_i = \text{dot}_i / \ell_i$, the score is $\ell_i^{\alpha} \cdot
# \text{dot}_i / \ell_i$. Apply the formula only where $\ell_i > 0$ (a boolean mask
# works) and leave the other scores at $0$. Apply the mask *before* the power: for a
# negative $\alpha$, `np.float64(0.0) ** alpha` is infinite and NumPy warns. Write the
# function self-contained, without calling your `affinity_scores`.

# %% nbgrader={"grade": false, "grade_id": "norm_weighted_scores", "locked": false, "schema_version": 3, "solution": true}
def norm_weighted_scores(query: np.ndarray, candidates: np.ndarray, alpha: float) -> np.ndarray:
    """Cosine scores re-weighted by vector lengths: ``(|q| |c_i|) ** alpha * cos(q, c_i)``.

    ``alpha = 0`` gives the cosine similarity, ``alpha = 1`` the dot product, and values
    in between let popular (long) candidates count for more or less.

    Args:
        query: shape ``(d,)``.
        candidates: shape ``(n, d)``, one candidate per row.
        alpha: the exponent on the product of lengths; any real number.

    Returns:
        A float array of shape ``(n,)``. A candidate scores ``0.0`` when it or the query
        is the zero vector, for every ``alpha`` (no NaN, no warning).

    Raises:
        ValueError: if ``query`` is not 1-d, ``candidates`` not 2-d, or dimensions differ.
    """
    ### BEGIN SOLUTION
    query = np.asarray(query, dtype=float)
    candidates = np.asarray(candidates, dtype=float)
    if query.ndim != 1 or candidates.ndim != 2 or candidates.shape[1] != query.shape[0]:
        raise ValueError(
            f"expected query (d,) and candidates (n, d), got {query.shape} and {candidates.shape}"
        )
    dots = candidates @ query
    lengths = np.linalg.norm(candidates, axis=1) * np.linalg.norm(query)
    scores = np.zeros_like(dots)
    nonzero = lengths > 0
    scores[nonzero] = lengths[nonzero] ** alpha * dots[nonzero] / lengths[nonzero]
    return scores
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_norm_weighted_scores", "locked": true, "points": 2, "schema_version": 3, "solution": false}
from movierec.checks import close as _close, equal as _equal, finite as _finite, ints as _ints, plain as _plain
# A hand-made case: a long "blockbuster" 30 degrees off the query, a short "niche" item
# pointing exactly along it, and a short item at a right angle.
_q = np.array([1.0, 0.0])
_c = np.array([[3.0 * math.cos(math.pi / 6), 3.0 * math.sin(math.pi / 6)], [0.8, 0.0], [0.0, 0.5]])
_lengths = np.linalg.norm(_c, axis=1) * np.linalg.norm(_q)
_cosine = (_c @ _q) / _lengths
_s0 = norm_weighted_scores(_q, _c, alpha=0.0)
assert isinstance(_s0, np.ndarray) and _s0.shape == (3,), f"expected an array of shape (3,), got {np.shape(_s0)}"
assert _close(_s0, _cosine), f"alpha = 0 must give the cosine {_cosine}, got {_s0}"
_s1 = norm_weighted_scores(_q, _c, alpha=1.0)
assert _close(_s1, _c @ _q), f"alpha = 1 must give the dot product {_c @ _q}, got {_s1}"
assert int(np.argmax(_plain(_s0))) == 1, "with alpha = 0 (cosine) the perfectly aligned niche item (id 1) should win"
assert int(np.argmax(_plain(_s1))) == 0, "with alpha = 1 (dot) the long blockbuster (id 0) should win despite its angle"
_half = norm_weighted_scores(_q, _c, alpha=0.5)
assert _close(_half, np.sqrt(_lengths) * _cosine), "alpha = 0.5 should multiply the cosine by sqrt(|q| |c|)"
print("norm_weighted_scores: visible tests passed")
### BEGIN HIDDEN TESTS
_rng = np.random.default_rng(5)
_q = _rng.normal(size=4)
_c = _rng.normal(size=(30, 4)) * _rng.uniform(0.2, 5.0, size=(30, 1))
_lengths = np.linalg.norm(_c, axis=1) * np.linalg.norm(_q)
_cosine = (_c @ _q) / _lengths
for _alpha in (-1.0, 0.0, 0.3, 1.0, 2.5):
    assert _close(norm_weighted_scores(_q, _c, _alpha), _lengths**_alpha * _cosine), f"wrong scores for alpha = {_alpha}"
    _order = np.argsort(-_plain(norm_weighted_scores(_q, _c, _alpha)), kind="stable")
    _order_scaled = np.argsort(-_plain(norm_weighted_scores(4.0 * _q, _c, _alpha)), kind="stable")
    assert _equal(_order, _order_scaled), "rescaling the query must not change the ranking"
_positive = _cosine > 0
_big = _plain(norm_weighted_scores(_q, _c, 50.0))
assert int(np.argmax(_big)) == int(np.flatnonzero(_positive)[np.argmax(_lengths[_positive])]), "a huge alpha should let the longest positively aligned candidate win"
_cz = np.vstack([_c[:3], np.zeros((1, 4))])
for _alpha in (-1.0, 0.0, 0.5, 1.0):
    with warnings.catch_warnings(record=True) as _caught:
        warnings.simplefilter("always")
        _sz = norm_weighted_scores(_q, _cz, _alpha)
        _szq = norm_weighted_scores(np.zeros(4), _c, _alpha)
    assert not _caught, f"zero vectors must not trigger NumPy warnings (alpha = {_alpha}): mask before dividing or taking powers"
    assert _finite(_sz) and _sz[3] == 0.0, f"a zero candidate must score 0.0 (alpha = {_alpha}), got {_sz[3]}"
    assert _close(_szq, 0.0), "a zero query must score 0.0 everywhere"
try:
    norm_weighted_scores(np.ones(3), _c, 0.5)
except ValueError:
    pass
else:
    raise AssertionError("mismatched dimensions should raise ValueError")
### END HIDDEN TESTS

# %% [markdown]
# Now sweep $\alpha$ for the toy user and watch the head of the list change hands. We
# report the smallest $\alpha$ on a fine grid at which the cosine winner loses first
# place.

# %%
alphas = np.round(np.linspace(0.0, 1.5, 151), 2)
top_at = [int(np.argmax(norm_weighted_scores(TOY_USER, TOY_MOVIES, a))) for a in alphas]
flip_alpha = next((a for a, t in zip(alphas, top_at) if t != top_at[0]), None)
for a in (0.0, 0.25, 0.5, 0.75, 1.0):
    ids = top_k(norm_weighted_scores(TOY_USER, TOY_MOVIES, a), 3)
    print(f"alpha={a:4.2f}: " + " > ".join(TOY_TITLES[i] for i in ids))
if flip_alpha is not None:
    record("intro.toy_flip_alpha", float(flip_alpha))

# %% [markdown]
# For this user the niche film keeps first place only while $\alpha$ stays below about
# 0.16: a small dose of length is enough to hand the top spot to *Star Wars*, and by
# $\alpha = 0.5$ *Titanic* has overtaken *Speed* as well. Real systems tune such knobs
# by measuring what users actually engage with. The two-tower model of lesson 04 scores
# with the plain dot product, as TensorFlow Recommenders does by default, and lets
# training decide how long each vector becomes.

# %% [markdown]
# ## 8. Learning embeddings from ratings: matrix factorization
#
# Hand-written vectors do not scale. Collaborative filtering learns them from
# interactions alone. Put the ratings in a matrix $R$ with one row per user and one
# column per item; most entries are **missing**, because each user has rated only a few
# items. Call the set of observed (user, item) pairs $\Omega$. Matrix factorization
# looks for a $d$-dimensional vector $\mathbf{u}_u$ for every user and $\mathbf{v}_i$ for
# every item so that
#
# $$
# R \approx U V^\top, \qquad \hat r_{ui} = \mathbf{u}_u^\top \mathbf{v}_i ,
# $$
#
# where the rows of $U \in \mathbb{R}^{m \times d}$ and $V \in \mathbb{R}^{n \times d}$
# are the user and item embeddings. The prediction is a dot product, the same
# affinity as in section 5, and $d$ is far smaller than the number of users or items,
# so the model must find a few shared directions of taste that explain many ratings.
# The fit is measured on the observed entries only, with an L2 penalty that keeps the
# vectors small:
#
# $$
# \mathcal{L}(U, V) = \sum_{(u, i) \in \Omega} \left(r_{ui} - \mathbf{u}_u^\top \mathbf{v}_i\right)^2
# + \lambda \left(\lVert U \rVert_F^2 + \lVert V \rVert_F^2\right).
# $$
#
# Without the penalty, a user with two ratings could be fitted exactly by a wild vector
# that predicts nonsense everywhere else; $\lambda$ trades training fit for sensible
# predictions on the entries we have not seen, which are the ones a recommender is for
# (Koren, Bell & Volinsky, 2009).
#
# Real ratings also carry offsets: some users rate everything high, some films are liked
# by everyone. Production models add a global mean and per-user and per-item bias terms.
# To keep the algebra short, our toy data is already centred, so we leave them out.
#
# The cell below (tagged `export`, so later lessons can import it from `movierec.intro`)
# builds a toy rating matrix with a known answer: a random rank-$r$ "true taste" matrix
# plus a little noise, with only a fraction of entries observed. Unobserved entries hold
# `NaN`, which makes any accidental use of them visible at once. It also holds the
# helpers we use to measure a fit.

# %% tags=["export"]
import numpy as np


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


# %%
ratings, observed, truth = make_low_rank_ratings(n_users=60, n_items=40, rank=3, density=0.5, noise=0.1, seed=0)
train_mask, test_mask = split_observed(observed, test_fraction=0.2, seed=0)
print(f"rating matrix: {ratings.shape[0]} users x {ratings.shape[1]} items")
print(f"observed: {observed.sum()} of {observed.size} entries; train {train_mask.sum()}, held-out {test_mask.sum()}")
print("first user, first 6 items:", np.round(ratings[0, :6], 2))

# %% [markdown]
# ### Exercise 4 (1 point): `predict`
#
# The model's prediction for one (user, item) pair is the dot product of their rows. A
# serving system asks for many pairs at once, so accept arrays of user and item ids as
# well and return one prediction per pair.
#
# **Hint:** `U[users]` and `V[items]` pick whole rows for arrays of ids; multiply them
# element by element and sum over the last axis. Do not form the full `U @ V.T`: with a
# million users and a million items it would not fit in memory.

# %% nbgrader={"grade": false, "grade_id": "predict", "locked": false, "schema_version": 3, "solution": true}
def predict(U: np.ndarray, V: np.ndarray, user, item):
    """Predicted rating ``U[user] @ V[item]`` for one pair or for many pairs.

    Args:
        U: ``(n_users, d)`` user embeddings.
        V: ``(n_items, d)`` item embeddings.
        user: an int id, or an integer array of ids.
        item: an int id, or an integer array of ids with the same shape as ``user``.

    Returns:
        A Python ``float`` when ``user`` and ``item`` are ints; otherwise a float array
        with the shape of ``user``, entry ``j`` predicting the pair ``(user[j], item[j])``.

    Raises:
        ValueError: if ``U`` and ``V`` have different embedding dimensions ``d``.
    """
    ### BEGIN SOLUTION
    U = np.asarray(U, dtype=float)
    V = np.asarray(V, dtype=float)
    if U.shape[1] != V.shape[1]:
        raise ValueError(f"user embeddings have {U.shape[1]} dimensions but item embeddings have {V.shape[1]}")
    scores = np.sum(U[user] * V[item], axis=-1)
    if np.ndim(user) == 0 and np.ndim(item) == 0:
        return float(scores)
    return scores
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_predict", "locked": true, "points": 1, "schema_version": 3, "solution": false}
from movierec.checks import close as _close, equal as _equal, finite as _finite, ints as _ints, plain as _plain
_U = np.array([[1.0, 2.0], [0.5, -1.0], [0.0, 3.0]])
_V = np.array([[2.0, 1.0], [1.0, 1.0]])
_p = predict(_U, _V, 0, 1)
assert isinstance(_p, float), f"a single (user, item) pair should give a Python float, got {type(_p).__name__}"
assert _close(_p, 3.0), f"user 0 = [1, 2], item 1 = [1, 1]: prediction should be 3.0, got {_p}"
_p = predict(_U, _V, np.array([0, 1, 2]), np.array([0, 0, 1]))
assert np.shape(_p) == (3,), f"three pairs should give three predictions, got shape {np.shape(_p)}"
assert _close(_p, [4.0, 0.0, 3.0]), f"predictions for pairs (0,0), (1,0), (2,1) should be [4, 0, 3], got {_p}"
try:
    predict(_U, np.ones((2, 3)), 0, 0)
except ValueError:
    pass
else:
    raise AssertionError("U with d=2 and V with d=3 should raise ValueError")
print("predict: visible tests passed")
### BEGIN HIDDEN TESTS
_rng = np.random.default_rng(3)
_U = _rng.normal(size=(25, 4))
_V = _rng.normal(size=(15, 4))
_users = _rng.integers(0, 25, size=100)
_items = _rng.integers(0, 15, size=100)
assert _close(predict(_U, _V, _users, _items), (_U @ _V.T)[_users, _items]), "batched predictions disagree with the full U @ V.T"
_grid_u, _grid_i = np.meshgrid(np.arange(25), np.arange(15), indexing="ij")
assert _close(predict(_U, _V, _grid_u, _grid_i), _U @ _V.T), "a 2-d grid of ids should give the full prediction matrix"
assert _close(predict(_U, _V, 24, 14), float(_U[24] @ _V[14])), "single-pair prediction is wrong for the last user and item"
### END HIDDEN TESTS

# %% [markdown]
# ### Alternating least squares
#
# $\mathcal{L}$ is not convex in $U$ and $V$ together (it contains products of the
# unknowns), but it is an ordinary ridge regression in either one when the other is held
# fixed. **Alternating least squares** (ALS) exploits this. With $V$ fixed, each user's
# vector is the ridge solution over the items that user rated, $\Omega_u$:
#
# $$
# \mathbf{u}_u \leftarrow \left(V_{\Omega_u}^\top V_{\Omega_u} + \lambda I\right)^{-1} V_{\Omega_u}^\top \mathbf{r}_{u,\Omega_u},
# $$
#
# where $V_{\Omega_u}$ keeps only the rows of $V$ for those items and
# $\mathbf{r}_{u,\Omega_u}$ the matching ratings. Then, with $U$ fixed, every item gets
# the mirror-image update over the users who rated it. Each half step finds the *exact*
# minimum of $\mathcal{L}$ over the block it updates, so the loss can never go up: ALS
# decreases $\mathcal{L}$ monotonically, with no learning rate to tune. Every user's
# system is independent of every other user's, which is why ALS parallelizes so well
# on large clusters.
#
# **Pitfall:** "never goes up" is not "finds the best answer". Because $\mathcal{L}$ is
# not convex, an unlucky random start can leave ALS stuck in a poor local minimum whose
# training loss is many times the best one. The cheap remedy is to fit from a few seeds
# and keep the run with the lowest training objective; the tests below do exactly that.
#
# The popular alternative is **stochastic gradient descent** (SGD): visit the observed
# ratings in random order and, for each, nudge both vectors along the error
# $e = r_{ui} - \mathbf{u}_u^\top \mathbf{v}_i$, as in
# $\mathbf{u}_u \leftarrow \mathbf{u}_u + \eta\,(e\,\mathbf{v}_i - \lambda \mathbf{u}_u)$
# (and symmetrically for $\mathbf{v}_i$). SGD needs a learning rate $\eta$ but extends
# to any differentiable model; the Keras optimizers that train the models of lessons 04
# and 05 are refinements of this same idea.
#
# ### Exercise 5 (3 points): `fit_matrix_factorization`
#
# Implement ALS. Start from small random factors drawn with
# `np.random.default_rng(seed)`, then repeat `iters` sweeps of "update every user, then
# update every item". After each sweep, append `mf_objective(...)` (from the export cell
# above) to a list of losses.
#
# **Hint:** work on a copy of the ratings with unobserved entries replaced by `0.0`
# (`np.where(mask, ratings, 0.0)`), so `NaN` never enters your arithmetic, and select a
# user's rated items with the boolean row `mask[u]`. Solve each small system with
# `np.linalg.solve(A, b)` rather than inverting a matrix. A user with no ratings gets the
# zero vector automatically, since the right-hand side is zero and $\lambda I$ keeps
# the system solvable. Initial values of scale about 0.1 work well. Once a loop over users
# works, you may replace it by one call: `np.linalg.solve` also solves a whole stack of
# systems, shaped `(n_users, d, d)` and `(n_users, d, 1)`.

# %% nbgrader={"grade": false, "grade_id": "fit_matrix_factorization", "locked": false, "schema_version": 3, "solution": true}
def fit_matrix_factorization(
    ratings: np.ndarray,
    mask: np.ndarray,
    rank: int,
    reg: float = 0.1,
    iters: int = 20,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Factorize ``ratings ≈ U @ V.T`` on the observed entries by alternating least squares.

    Args:
        ratings: ``(n_users, n_items)``; entries where ``mask`` is False are ignored and
            may hold anything, including NaN.
        mask: boolean ``(n_users, n_items)``, True where a rating is observed.
        rank: the embedding dimension ``d``.
        reg: the L2 penalty ``lambda`` (must be positive).
        iters: number of sweeps; one sweep updates every user, then every item.
        seed: seed for ``np.random.default_rng``, so equal seeds give equal results.

    Returns:
        ``(U, V, losses)``: ``U`` is ``(n_users, rank)``, ``V`` is ``(n_items, rank)``, and
        ``losses`` is a list of ``iters`` floats, ``losses[t]`` being
        ``mf_objective(ratings, mask, U, V, reg)`` after sweep ``t + 1``.
    """
    ### BEGIN SOLUTION
    mask = np.asarray(mask, dtype=bool)
    filled = np.where(mask, np.asarray(ratings, dtype=float), 0.0)
    n_users, n_items = filled.shape
    rng = np.random.default_rng(seed)
    U = rng.normal(scale=0.1, size=(n_users, rank))
    V = rng.normal(scale=0.1, size=(n_items, rank))
    ridge = reg * np.eye(rank)
    weights = mask.astype(float)
    losses: list[float] = []
    for _ in range(iters):
        # Every user's normal equations at once: (sum of v v^T over the user's observed
        # items + lambda I) u = sum of r v over the same items; `filled` is 0 elsewhere.
        gram = np.einsum("ui,ij,ik->ujk", weights, V, V) + ridge
        U = np.linalg.solve(gram, (filled @ V)[..., None])[..., 0]
        # Then every item's, with the users just updated.
        gram = np.einsum("ui,uj,uk->ijk", weights, U, U) + ridge
        V = np.linalg.solve(gram, (filled.T @ U)[..., None])[..., 0]
        losses.append(mf_objective(ratings, mask, U, V, reg))
    return U, V, losses
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_fit_matrix_factorization", "locked": true, "points": 3, "schema_version": 3, "solution": false}
from movierec.checks import close as _close, equal as _equal, finite as _finite, ints as _ints, plain as _plain
# Toy data with a known answer: a rank-2 matrix plus noise of standard deviation 0.05.
# ALS can stop in a poor local minimum from an unlucky start, so we fit from three
# seeds and judge the run with the lowest training objective, as a practitioner would.
_R, _M, _truth = make_low_rank_ratings(n_users=30, n_items=20, rank=2, density=0.8, noise=0.05, seed=1)
_runs = [tuple(_plain(x) for x in fit_matrix_factorization(_R, _M, rank=2, reg=0.05, iters=30, seed=_s))
         for _s in range(3)]
for _U, _V, _losses in _runs:
    assert np.shape(_U) == (30, 2) and np.shape(_V) == (20, 2), f"expected U (30, 2) and V (20, 2), got {np.shape(_U)} and {np.shape(_V)}"
    assert _finite(_U) and _finite(_V), "U and V contain NaN or inf: did NaN from unobserved entries leak in?"
    assert len(_losses) == 30, f"losses should hold one value per sweep (30), got {len(_losses)}"
    assert _close(_losses[-1], mf_objective(_R, _M, _U, _V, 0.05), rel_tol=1e-6), "the last loss must equal mf_objective of the returned U and V"
    _steps = np.diff(_losses)
    assert np.all(_steps <= 1e-9 * abs(_losses[0])), f"ALS must never increase the objective, but it rose by up to {_steps.max():.3g}"
_U, _V, _losses = min(_runs, key=lambda run: run[2][-1])
_train_rmse = masked_rmse(_R, _U @ _V.T, _M)
assert _train_rmse < 0.1, f"RMSE on the observed ratings is {_train_rmse:.3f}; a rank-2 fit of rank-2 data should be near the noise level 0.05"
_heldout_rmse = masked_rmse(_truth, _U @ _V.T, ~_M)
assert _heldout_rmse < 0.25, f"RMSE on unobserved entries is {_heldout_rmse:.3f} (the entries have standard deviation about 1); the factors do not generalise"
print(f"fit_matrix_factorization: visible tests passed (train RMSE {_train_rmse:.3f}, held-out RMSE {_heldout_rmse:.3f})")
### BEGIN HIDDEN TESTS
_U0, _V0, _losses0 = _runs[0]
_U2, _V2, _losses2 = (_plain(x) for x in fit_matrix_factorization(_R, _M, rank=2, reg=0.05, iters=30, seed=0))
assert _equal(_U0, _U2) and _equal(_V0, _V2), "the same seed must give exactly the same factors"
# Recompute the objective ourselves after 1, 2, ..., 6 sweeps: it must never go up.
_objs = []
for _t in range(1, 7):
    _Ut, _Vt, _lt = (_plain(x) for x in fit_matrix_factorization(_R, _M, rank=2, reg=0.05, iters=_t, seed=0))
    _objs.append(mf_objective(_R, _M, _Ut, _Vt, 0.05))
    assert _close(_lt[-1], _objs[-1], rel_tol=1e-6), f"after {_t} sweeps the reported loss differs from the objective of the returned factors"
assert np.all(np.diff(_objs) <= 1e-9 * _objs[0]), "the objective of the returned factors rises between sweeps"
assert _close(_lt, _losses0[:6], rtol=1e-9), "the first sweeps of a longer run should report the same losses as a shorter run"
# Unobserved entries must not influence the fit, whatever they hold.
_R_zero = np.where(_M, _R, 0.0)
_R_junk = np.where(_M, _R, 1e6)
_Uz, _Vz, _ = (_plain(x) for x in fit_matrix_factorization(_R_zero, _M, rank=2, reg=0.05, iters=5, seed=0))
_Uj, _Vj, _ = (_plain(x) for x in fit_matrix_factorization(_R_junk, _M, rank=2, reg=0.05, iters=5, seed=0))
assert _close(_Uz, _Uj) and _close(_Vz, _Vj), "values in unobserved entries changed the fit: use only entries where mask is True"
# A user with no ratings gets a zero vector, not NaN.
_M_empty = _M.copy()
_M_empty[4] = False
_Ue, _Ve, _le = (_plain(x) for x in fit_matrix_factorization(_R, _M_empty, rank=2, reg=0.05, iters=3, seed=0))
assert _finite(_Ue) and _close(_Ue[4], 0.0), "a user with no observed ratings should end with the zero vector"
# Generalisation on fresh data of a different shape and rank (best of three seeds again).
_R3, _M3, _truth3 = make_low_rank_ratings(n_users=50, n_items=30, rank=3, density=0.7, noise=0.05, seed=8)
_runs3 = [tuple(_plain(x) for x in fit_matrix_factorization(_R3, _M3, rank=3, reg=0.05, iters=30, seed=_s))
          for _s in (2, 3, 4)]
_U3, _V3, _l3 = min(_runs3, key=lambda run: run[2][-1])
assert np.shape(_U3) == (50, 3) and np.shape(_V3) == (30, 3), "rank-3 fit returned the wrong shapes"
assert masked_rmse(_truth3, _U3 @ _V3.T, ~_M3) < 0.25, "held-out error on a rank-3 toy matrix is too large"
_held_baseline = masked_rmse(_truth3, np.zeros_like(_truth3), ~_M3)
assert masked_rmse(_truth3, _U3 @ _V3.T, ~_M3) < 0.3 * _held_baseline, "the fit should beat predicting zero on unobserved entries by a wide margin"
### END HIDDEN TESTS

# %% [markdown]
# Fit the rank-3 toy matrix on its training entries and compare three numbers: the error
# on the ratings the model was fitted to, the error on the held-out ratings it never saw,
# and a baseline that predicts the mean training rating for everything.

# %%
U, V, losses = fit_matrix_factorization(ratings, train_mask, rank=3, reg=0.1, iters=60, seed=0)
train_rmse = masked_rmse(ratings, U @ V.T, train_mask)
test_users, test_items = np.nonzero(test_mask)
heldout_pred = predict(U, V, test_users, test_items)
heldout_rmse = float(np.sqrt(np.mean((ratings[test_users, test_items] - heldout_pred) ** 2)))
mean_rating = float(np.mean(ratings[train_mask]))
baseline_rmse = float(np.sqrt(np.mean((ratings[test_users, test_items] - mean_rating) ** 2)))
record("intro.mf_train_rmse", train_rmse)
record("intro.mf_heldout_rmse", heldout_rmse)
record("intro.mean_baseline_heldout_rmse", baseline_rmse)

# %% [markdown]
# The training RMSE comes out at about 0.08, *below* the 0.1 of noise we added: the
# model has fitted a little of that noise. The held-out RMSE, about 0.12, is the honest
# number. It sits just above the noise floor that no model could beat, and at roughly a
# tenth of the mean baseline's 1.1: trained on 40% of the matrix, the factorization
# recovers ratings it never saw. Real tastes are not exactly low-rank, so on MovieLens
# the gap to the baseline will be much smaller.
#
# How should $d$ be chosen? The data was generated with rank 3, so we can check what
# happens when the model is too small or too large: fit ranks 1 to 8 and compare errors.

# %%
ranks = list(range(1, 9))
train_by_rank, heldout_by_rank = [], []
for d in ranks:
    U_d, V_d, _ = fit_matrix_factorization(ratings, train_mask, rank=d, reg=0.1, iters=60, seed=0)
    train_by_rank.append(masked_rmse(ratings, U_d @ V_d.T, train_mask))
    heldout_by_rank.append(masked_rmse(ratings, U_d @ V_d.T, test_mask))
best_rank = ranks[int(np.argmin(heldout_by_rank))]
record("intro.mf_best_rank", best_rank)

fig, (ax_loss, ax_rank) = plt.subplots(1, 2, figsize=(11, 4))
ax_loss.plot(range(1, len(losses) + 1), losses, marker="o", markersize=3)
ax_loss.set_yscale("log")
ax_loss.set_xlabel("ALS sweep")
ax_loss.set_ylabel("objective L(U, V) (log scale)")
ax_loss.set_title("ALS never increases the training objective")
ax_rank.plot(ranks, train_by_rank, marker="o", label="train entries")
ax_rank.plot(ranks, heldout_by_rank, marker="s", label="held-out entries")
ax_rank.axvline(3, color="grey", linestyle=":", label="true rank (3)")
ax_rank.set_xlabel("embedding dimension d")
ax_rank.set_ylabel("RMSE")
ax_rank.set_title("Too small underfits, too large fits noise")
ax_rank.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# On the left, the objective falls steeply over the first sweeps and then flattens;
# later sweeps only polish the fit. On the right, the training error keeps shrinking as
# $d$ grows, since more dimensions can always fit the seen entries more closely, but the
# held-out error is lowest at the true rank and gets worse beyond it, as the extra
# dimensions start fitting noise. Real data has no "true rank", so $d$ and $\lambda$ are
# chosen exactly this way: by the error on ratings held out from training.
#
# **Think about it:** what would the held-out curve look like with $\lambda = 0$? Try it
# (use a tiny positive value such as `1e-9` so the linear systems stay solvable).

# %% [markdown]
# ## 9. Where the course goes next
#
# Everything in this lesson reappears at scale in the lessons that follow, on MovieLens
# 100k: 100,000 ratings from 943 users on 1,682 movies (Harper & Konstan, 2015).
#
# * **Lesson 02 — the data set.** Load MovieLens with TensorFlow Datasets, look at the
#   rating distribution and the long tail of movie popularity.
# * **Lesson 03 — preprocessing.** Turn raw ids and titles into vocabularies and
#   integer indices that an embedding layer can look up, and split the data for
#   evaluation.
# * **Lesson 04 — retrieval.** A two-tower model in TensorFlow Recommenders: a query
#   tower that embeds users, a candidate tower that embeds movies, dot-product affinity
#   (section 5), and top-$k$ metrics (section 6). It is matrix factorization generalised
#   and trained by gradient descent.
# * **Lesson 05 — ranking.** The second stage of section 3: a model that scores a short
#   list of (user, movie) pairs more precisely, by predicting the star rating.
# * **Lesson 06 — approximate search with Annoy.** Replace "score every movie, then
#   top-$k$" with an index that finds the nearest item vectors without visiting them
#   all.
# * **Lesson 07 — serving.** Export the models and answer recommendation requests
#   over HTTP with TensorFlow Serving.

# %% [markdown]
# ## References
#
# * C. Anderson (2006). *The Long Tail: Why the Future of Business Is Selling Less of
#   More.* Hyperion.
# * P. Covington, J. Adams, E. Sargin (2016). "Deep Neural Networks for YouTube
#   Recommendations." *RecSys '16.* <https://doi.org/10.1145/2959100.2959190>
# * C. A. Gomez-Uribe, N. Hunt (2015). "The Netflix Recommender System: Algorithms,
#   Business Value, and Innovation." *ACM TMIS* 6(4). <https://doi.org/10.1145/2843948>
# * F. M. Harper, J. A. Konstan (2015). "The MovieLens Datasets: History and Context."
#   *ACM TiiS* 5(4). <https://doi.org/10.1145/2827872>
# * Y. Hu, Y. Koren, C. Volinsky (2008). "Collaborative Filtering for Implicit Feedback
#   Datasets." *ICDM '08.* <https://doi.org/10.1109/ICDM.2008.22>
# * Y. Koren, R. Bell, C. Volinsky (2009). "Matrix Factorization Techniques for
#   Recommender Systems." *IEEE Computer* 42(8). <https://doi.org/10.1109/MC.2009.263>
# * Google for Developers. *Recommendation Systems* course, in particular "Candidate
#   generation overview" (similarity measures).
#   <https://developers.google.com/machine-learning/recommendation>
# * TensorFlow Recommenders documentation. <https://www.tensorflow.org/recommenders>
