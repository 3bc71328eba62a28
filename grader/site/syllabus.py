"""The course plan: every lesson's slug, working title, estimated time and one-line summary.

A lesson's own first heading is its real title once ``solutions/NN_name.py`` exists;
the titles here name lessons that are planned but not yet written, so the site can
show a "coming soon" page for them.

The times are a student's, not the machine's: reading the prose and the code shown, doing
the exercises, and running the lesson once in full. :func:`estimated_minutes` is the
rule of thumb behind them, and a test keeps every stated time at or above it. The run
times in the summaries are ``make course``'s per-lesson seconds (each reference run alone,
one TensorFlow thread, on the course's 2-core machine), to the nearest half minute.
"""

from __future__ import annotations

from dataclasses import dataclass

import nbformat

from grader.lessons import is_exercise, is_test

PROSE_WORDS_PER_MINUTE = 150  # technical prose with formulas, read carefully
CODE_LINES_PER_MINUTE = 30  # shown code, read to understand it
MINUTES_PER_EXERCISE = 20  # think, write, fail a test, fix


def estimated_minutes(nb: nbformat.NotebookNode, run_minutes: float = 0.0) -> int:
    """A student's time for a lesson: reading prose and shown code, the exercises, one full run."""
    words = sum(len(cell.source.split()) for cell in nb.cells if cell.cell_type == "markdown")
    code = [cell for cell in nb.cells if cell.cell_type == "code" and not (is_exercise(cell) or is_test(cell))]
    lines = sum(1 for cell in code for line in cell.source.splitlines() if line.strip())
    exercises = sum(1 for cell in nb.cells if cell.cell_type == "code" and is_exercise(cell))
    return round(words / PROSE_WORDS_PER_MINUTE + lines / CODE_LINES_PER_MINUTE
                 + exercises * MINUTES_PER_EXERCISE + run_minutes)


@dataclass(frozen=True)
class Planned:
    slug: str
    title: str
    minutes: int
    summary: str


SYLLABUS = (
    Planned("01_intro", "What is a recommender?", 130,
            "Queries and candidates, retrieval → ranking, embeddings, dot vs cosine, matrix factorization."),
    Planned("02_dataset", "MovieLens 100k with TFDS and tf.data", 165,
            "Loading, exploring and splitting the ratings without leaking the future."),
    Planned("03_preprocessing", "From raw features to embeddings", 210,
            "Keras preprocessing layers, vocabularies, text and multi-valued features, the two towers."),
    Planned("04_retrieval", "Two-tower retrieval with TFRS", 170,
            "In-batch softmax, the log-Q correction, an ablation on three evaluation protocols, and cold start. "
            "Its full run trains 18 models: about 2.5 min on two CPU cores."),
    Planned("05_ranking", "Ranking with explicit feedback", 170,
            "Rating prediction, deep & cross networks, NDCG, and the two-stage pipeline. "
            "Its full run trains 13 models: about 2.5 min on two CPU cores."),
    Planned("06_annoy", "Approximate nearest neighbours with Annoy", 150,
            "Random-projection forests, recall versus latency, and when ANN pays off. "
            "Its full run (one retrieval model, then index benchmarks): under 2 min on two CPU cores."),
    Planned("07_tf_serving", "TensorFlow Serving", 120,
            "SavedModels with named signatures, versions, config, labels, warm-up, REST and gRPC, batching. "
            "Its full run (training and exporting the two models): about 1 min on two CPU cores."),
    Planned("08_service", "The recommendation service", 120,
            "FastAPI over both stages: backends, the seen filter, the cold-start fallback, latency and monitoring. "
            "Its full run (models, index, a load test): about 1 min on two CPU cores."),
)
