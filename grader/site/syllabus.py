"""The course plan: every lesson's slug, working title, estimated time and one-line summary.

A lesson's own first heading is its real title once ``solutions/NN_name.py`` exists;
the titles here name lessons that are planned but not yet written, so the site can
show a "coming soon" page for them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Planned:
    slug: str
    title: str
    minutes: int
    summary: str


SYLLABUS = (
    Planned("01_intro", "What is a recommender?", 45,
            "Queries and candidates, retrieval → ranking, embeddings, dot vs cosine, matrix factorization."),
    Planned("02_dataset", "MovieLens 100k with TFDS and tf.data", 60,
            "Loading, exploring and splitting the ratings without leaking the future."),
    Planned("03_preprocessing", "From raw features to embeddings", 75,
            "Keras preprocessing layers, vocabularies, text and multi-valued features, the two towers."),
    Planned("04_retrieval", "Two-tower retrieval with TFRS", 90,
            "In-batch softmax, FactorizedTopK, BruteForce, and a feature-rich model that beats the tutorials."),
    Planned("05_ranking", "Ranking with explicit feedback", 90,
            "Rating prediction, deep & cross networks, NDCG, and the two-stage pipeline."),
    Planned("06_annoy", "Approximate nearest neighbours with Annoy", 60,
            "Random-projection forests, recall versus latency, and when ANN pays off."),
    Planned("07_serving", "Serving with TensorFlow Serving", 90,
            "SavedModel signatures, REST and gRPC clients, and a recommendation API with measured latency."),
)
