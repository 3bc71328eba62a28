"""Headless Chromium for the browser tests (the site's and the demo page's): found, launched, stopped.

Debian's ``/usr/bin/chromium`` driven by Playwright (no browser download). On a machine
without it the tests skip; in CI, which must run them, they fail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
    "--disable-background-networking", "--disable-component-update",
    "--disable-dev-shm-usage",  # containers (CI) have a tiny /dev/shm
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # offline, whatever the machine's network
]


def unavailable(reason: str):
    """Skip on a machine without a browser; fail in CI, which must run this test."""
    if IN_CI:
        pytest.fail(f"{reason} — CI must run the browser test (.ci/run installs Chromium)")
    pytest.skip(reason)


def find_chromium() -> str | None:
    candidates = [os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                  shutil.which("chromium-browser")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


@contextlib.contextmanager
def chromium(timeout_ms: int) -> Iterator:
    """A launched Playwright browser (each launch gets a fresh, empty profile of its own)."""
    executable = find_chromium()
    if executable is None:
        unavailable("Chromium is not installed (Debian: apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright's Python package is not installed (make install)")
    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, timeout=timeout_ms)
    try:
        yield browser
    finally:
        browser.close()
        playwright.stop()
