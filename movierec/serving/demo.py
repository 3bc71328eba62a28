"""The demo page of the recommendation API (``GET /``): hand-written, not generated from a lesson.

``python -m movierec.api serve`` installs it on the application of lesson 08
(:func:`install_demo`). The page is plain HTML with a little JavaScript — no build step, no
CDN, nothing fetched from outside the API. A visitor types or picks a user id and sees the
top 10 with predicted stars, the retrieval score and *why*: the movies the user rated in
training whose candidate embeddings are closest to each recommendation's (the dot product
in the retrieval model's space). A visitor can also pick a few liked movies as a new user:
their embeddings, averaged, are the query, and the ranker scores the candidates for an
unknown user (the out-of-vocabulary profile), so the order leans on retrieval.

Endpoints (JSON unless said otherwise):

* ``GET /`` — the page (HTML);
* ``GET /demo/catalogue`` — every title, and a sample of known user ids;
* ``GET /demo/recommend/{user_id}?k=10`` — ``/recommend``'s answer plus ``why`` per title;
* ``POST /demo/likes`` with ``{"titles": [...], "k": 10}`` — recommendations for a new user.

Errors are the API's own JSON errors (422 for a bad id or ``k``), shown on the page as text.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel

__all__ = ["PAGE", "explain", "install_demo", "recommend_for_likes"]

MAX_LIKES = 20
REASONS = 2  # nearest rated movies shown per recommendation


class Likes(BaseModel):
    titles: list[str]
    k: int = 10


def _vectors(recommender: Any) -> tuple[dict[str, int], np.ndarray]:
    """``({title: row}, vectors)`` of the index, computed once per recommender."""
    cached = getattr(recommender, "_demo_vectors", None)
    if cached is None:
        index = recommender.index
        rows: dict[str, int] = {}
        for position, label in enumerate(index.labels):
            rows.setdefault(str(label), position)
        vectors = np.stack([index.vector(p) for p in range(len(index))])
        cached = (rows, vectors)
        recommender._demo_vectors = cached
    return cached


def explain(recommender: Any, user_id: str, titles: list[str], n: int = REASONS) -> dict[str, list[str]]:
    """For each title, the ``n`` titles the user rated whose embeddings have the largest dot product with it."""
    rows, vectors = _vectors(recommender)
    rated = [t for t in sorted(recommender.seen.get(user_id, ())) if t in rows]
    if not rated:
        return {title: [] for title in titles}
    rated_vectors = vectors[[rows[t] for t in rated]]
    reasons = {}
    for title in titles:
        if title not in rows:
            reasons[title] = []
            continue
        similarity = rated_vectors @ vectors[rows[title]]
        reasons[title] = [rated[i] for i in np.argsort(-similarity, kind="stable")[:n]]
    return reasons


def recommend_for_likes(recommender: Any, liked: list[str], k: int = 10) -> dict[str, Any]:
    """Recommendations for a new user who liked ``liked``: their mean embedding retrieves, the ranker orders."""
    from movierec.serving.service import STARS, InvalidRequest, checked_scores

    k = recommender.check_k(k)
    rows, vectors = _vectors(recommender)
    liked = list(dict.fromkeys(str(t) for t in liked))
    unknown = [t for t in liked if t not in rows]
    if not liked or len(liked) > MAX_LIKES or unknown:
        problem = f"unknown titles {unknown[:3]}" if unknown else f"pick 1 to {MAX_LIKES} titles"
        raise InvalidRequest(f"likes: {problem}")
    query = vectors[[rows[t] for t in liked]].mean(axis=0)
    wanted = max(recommender.n_candidates, k)
    n_search = min(len(recommender.index), wanted + len(liked))
    retrieval_scores, positions = recommender.index.search(query, k=n_search)
    candidates: dict[str, float] = {}
    for position, score in zip(positions[0], retrieval_scores[0]):
        title = str(recommender.index.labels[position])
        if title not in liked:
            candidates.setdefault(title, float(score))
    titles = list(candidates)[:wanted]
    new_user = "demo-new-user"
    scores = checked_scores(recommender.backend.score([new_user] * len(titles), titles), len(titles))
    order = np.argsort(-scores, kind="stable")[:k]
    recommendations = []
    for i in order:
        similarity = vectors[[rows[t] for t in liked]] @ vectors[rows[titles[i]]]
        recommendations.append({
            "title": titles[i],
            "score": round(float(scores[i]), 6),
            "stars": round(float(np.clip(scores[i], *STARS)), 2),
            "retrieval_score": round(candidates[titles[i]], 6),
            "why": [liked[j] for j in np.argsort(-similarity, kind="stable")[:REASONS]],
        })
    return {"user_id": None, "known_user": False, "fallback": None, "liked": liked, "k": k,
            "recommendations": recommendations}


def install_demo(app: FastAPI, recommender: Any, *, sample_users: int = 30) -> FastAPI:
    """Add ``GET /`` and the ``/demo/...`` endpoints to ``app``."""
    users = sorted(recommender.seen, key=lambda u: (len(u), u))[:sample_users]

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE)

    @app.get("/demo/catalogue")
    def catalogue() -> JSONResponse:
        rows, _ = _vectors(recommender)
        return JSONResponse({"titles": sorted(rows), "users": users})

    @app.get("/demo/recommend/{user_id}")
    def recommend(user_id: str, k: int = 10) -> JSONResponse:
        answer = recommender.recommend(user_id, k)
        if answer.get("fallback") is None:
            reasons = explain(recommender, answer["user_id"], [r["title"] for r in answer["recommendations"]])
            for item in answer["recommendations"]:
                item["why"] = reasons[item["title"]]
        return JSONResponse(answer)

    @app.post("/demo/likes")
    def likes(body: Likes) -> JSONResponse:
        return JSONResponse(recommend_for_likes(recommender, body.titles, body.k))

    return app


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>movierec demo</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  form { display: flex; gap: .5rem; flex-wrap: wrap; align-items: center; margin-bottom: .75rem; }
  input, select, button { font-size: 1rem; padding: .3rem .5rem; }
  table { border-collapse: collapse; width: 100%; margin-top: 1rem; }
  th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #ddd; vertical-align: top; }
  td.num { text-align: right; white-space: nowrap; }
  .why { color: #555; font-size: .9rem; }
  #error { color: #a00; font-weight: 600; }
  #note { color: #555; }
</style>
</head>
<body>
<h1>movierec: ten movies for you</h1>
<p>Two-stage recommender of the course: query tower + Annoy index for 100 candidates, the ranker
for the order. Movies the user rated in training are never shown.</p>
<form id="by-user">
  <label for="user">User id</label>
  <input id="user" name="user" list="users" placeholder="e.g. 42" autocomplete="off">
  <datalist id="users"></datalist>
  <button type="submit" id="go">Recommend</button>
</form>
<form id="by-likes">
  <label for="likes">Or, as a new user, pick a few movies you like</label>
  <select id="likes" multiple size="5"></select>
  <button type="submit" id="go-likes">Recommend from likes</button>
</form>
<p id="error" role="alert"></p>
<p id="note"></p>
<table id="results" hidden>
  <thead><tr><th>#</th><th>title</th><th>stars</th><th>retrieval score</th><th>why</th></tr></thead>
  <tbody></tbody>
</table>
<script>
"use strict";
const $ = (id) => document.getElementById(id);

function show(answer) {
  $("error").textContent = "";
  const body = $("results").querySelector("tbody");
  body.replaceChildren();
  if (answer.fallback) {
    $("note").textContent = "Unknown user: " + answer.warning;
  } else if (answer.liked) {
    $("note").textContent = "New user who likes: " + answer.liked.join(", ");
  } else {
    $("note").textContent = "User " + answer.user_id + " (known to the models).";
  }
  answer.recommendations.forEach((item, i) => {
    const row = document.createElement("tr");
    row.className = "rec";
    const cells = [
      String(i + 1),
      item.title,
      item.stars === undefined ? "" : item.stars.toFixed(2),
      item.retrieval_score === undefined ? "" : item.retrieval_score.toFixed(3),
      item.why ? (item.why.length ? "because you rated " + item.why.join("; ") : "")
               : (item.ratings_in_training ? item.ratings_in_training + " ratings in training (popular)" : ""),
    ];
    cells.forEach((text, c) => {
      const cell = document.createElement("td");
      cell.textContent = text;
      if (c === 2 || c === 3) cell.className = "num";
      if (c === 4) cell.className = "why";
      row.appendChild(cell);
    });
    body.appendChild(row);
  });
  $("results").hidden = false;
}

let answered = 0;  // requests answered so far: the page's test waits for this count to move

function done() {
  document.body.dataset.answered = String(++answered);
  $("results").removeAttribute("aria-busy");
}

async function call(url, options) {
  $("error").textContent = "";
  $("results").setAttribute("aria-busy", "true");
  try {
    const reply = await fetch(url, options);
    const answer = await reply.json();
    if (!reply.ok) throw new Error(answer.error || ("HTTP " + reply.status));
    show(answer);
  } catch (err) {
    $("results").hidden = true;
    $("note").textContent = "";
    $("error").textContent = "Error: " + err.message;
  } finally {
    done();
  }
}

$("by-user").addEventListener("submit", (event) => {
  event.preventDefault();
  const user = $("user").value.trim();
  if (!user) { $("error").textContent = "Error: type a user id"; done(); return; }
  call("/demo/recommend/" + encodeURIComponent(user) + "?k=10");
});

$("by-likes").addEventListener("submit", (event) => {
  event.preventDefault();
  const titles = Array.from($("likes").selectedOptions).map((o) => o.value);
  call("/demo/likes", {method: "POST", headers: {"Content-Type": "application/json"},
                       body: JSON.stringify({titles: titles, k: 10})});
});

fetch("/demo/catalogue").then((r) => r.json()).then((data) => {
  data.users.forEach((u) => { const o = document.createElement("option"); o.value = u; $("users").appendChild(o); });
  data.titles.forEach((t) => { const o = document.createElement("option"); o.value = t; o.textContent = t;
                               $("likes").appendChild(o); });
  document.body.dataset.ready = "yes";
});
</script>
</body>
</html>
"""
