"""The demo page of the recommendation API (``GET /``, ``movierec/serving/demo.py``) in headless Chromium.

Debian's ``/usr/bin/chromium`` driven by Playwright, as in ``tests/test_browser.py``. The
models are the course models trained with the quick budget and exported once for this
module; the API runs as ``python -m movierec.api serve`` in a child process on the
loopback, exactly as a user starts it. The page must show 10 results for a known user,
none of them a movie the user rated in training; the popularity fallback for an unknown
user; and a readable error for a bad id.
"""

from __future__ import annotations

import json

import pytest
from browser_support import chromium

pytestmark = pytest.mark.browser

TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from movierec.setup import configure_environment, seed_everything

    configure_environment()
    seed_everything()
    from movierec.api import export_course_models

    base = tmp_path_factory.mktemp("demo") / "models"
    export_course_models(base, quick=True)
    return base


@pytest.fixture(scope="module")
def seen(models):
    from movierec.serving.index import ANNOY_DIR, HISTORY_FILE

    return json.loads((models / ANNOY_DIR / "1" / HISTORY_FILE).read_text(encoding="utf-8"))["seen"]


@pytest.fixture(scope="module")
def api_url(models):
    from movierec.serving.launch import api_server

    with api_server(models) as url:
        yield url


@pytest.fixture(scope="module")
def page(api_url):
    with chromium(TIMEOUT_MS) as browser:
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(api_url + "/")
        page.wait_for_selector("body[data-ready='yes']")
        yield page


def ask_for(page, user: str) -> None:
    page.fill("#user", user)
    page.click("#go")
    page.wait_for_function("document.querySelector('#error').textContent || !document.querySelector('#results').hidden")


def titles(page) -> list[str]:
    return page.eval_on_selector_all("#results tbody tr.rec td:nth-child(2)", "cells => cells.map(c => c.textContent)")


def test_a_known_user_sees_ten_movies_none_already_rated(page, seen):
    ask_for(page, "42")
    shown = titles(page)
    assert len(shown) == 10, f"expected 10 recommendations, the page shows {shown}"
    assert not set(shown) & set(seen["42"]), f"the page recommends movies user 42 rated: {set(shown) & set(seen['42'])}"
    stars = page.eval_on_selector_all("#results tbody tr.rec td:nth-child(3)", "cells => cells.map(c => c.textContent)")
    assert all(1.0 <= float(s) <= 5.0 for s in stars), f"predicted stars are shown on the 1-5 scale: {stars}"
    why = page.eval_on_selector_all("#results tbody tr.rec td:nth-child(5)", "cells => cells.map(c => c.textContent)")
    assert all(w.startswith("because you rated ") for w in why), f"each row says why: {why}"
    assert page.text_content("#error") == ""


def test_an_unknown_user_sees_the_popularity_fallback(page):
    ask_for(page, "no-such-user")
    assert len(titles(page)) == 10
    assert "Unknown user" in page.text_content("#note") and "not personalised" in page.text_content("#note")


def test_a_bad_id_shows_a_readable_error(page):
    ask_for(page, "9" * 65)
    error = page.text_content("#error")
    assert "user_id is 65 characters long" in error, f"the error should say what is wrong, got {error!r}"
    assert page.is_hidden("#results"), "no stale results under an error"


def test_a_new_user_can_pick_liked_movies(page):
    page.select_option("#likes", ["Star Wars (1977)", "Return of the Jedi (1983)", "Toy Story (1995)"])
    page.click("#go-likes")
    page.wait_for_function("!document.querySelector('#results').hidden || document.querySelector('#error').textContent")
    shown = titles(page)
    assert len(shown) == 10 and "Star Wars (1977)" not in shown, f"10 new titles expected, got {shown}"
    assert "New user who likes" in page.text_content("#note")
