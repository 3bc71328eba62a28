"""The published site works in a real browser, with no network: what a reader sees first.

Headless Chromium — Debian's ``chromium`` at ``/usr/bin/chromium``, driven by
Playwright's Python package (never a browser that Playwright downloads) — loads the
built site from a local HTTP server that serves it under ``/<repository name>/``, the
way GitHub Pages does. On the home page, the syllabus, glossary and references, and
every lesson page it checks: no console errors and no failed or off-site requests,
formulas typeset by MathJax, mermaid diagrams drawn as SVG, every internal link and
anchor resolving, and — on each written lesson — the Colab link pointing at the
notebook the build published (fetched from the server and read with ``nbformat``).
It also searches for "Annoy" and flips the dark/light toggle. A screenshot of each
page is saved in ``build/screenshots/``.

Legibility is checked the way a reader notices it, at desktop width and on a 400 px
phone: no code block wider than its container (lessons are formatted to 120 characters),
exercise code as large as other code, diagram text at least 11 px, and every figure with
an alt text of its own and a caption. A lesson is also shot at phone width and in dark mode.

Without Chromium (a student's laptop) the test skips and says why; in CI (``CI=true``)
it fails instead, because ``.ci/run`` installs Chromium.
"""

from __future__ import annotations

import functools
import http.server
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
from browser_support import chromium, unavailable

from grader.build.bootstrap import MARK_BEGIN
from grader.lessons import BUILD, LESSONS
from grader.settings import publish_settings
from grader.site.syllabus import SYLLABUS

pytestmark = pytest.mark.browser

SCREENSHOTS = BUILD / "screenshots"
VIEWPORT = {"width": 1280, "height": 860}
PHONE = {"width": 400, "height": 860}
MIN_TEXT_PX = 11  # the smallest diagram or code text a reader can take in without zooming
TIMEOUT_MS = 90_000  # generous: under `make test` the other worker grades lessons on the same 2 cores
# mkdocs-material renders each diagram into a *closed* shadow root; opening it lets the
# test see the SVG. It changes nothing else on the page.
OPEN_SHADOW_ROOTS = """
const attach = Element.prototype.attachShadow;
Element.prototype.attachShadow = function (init) { return attach.call(this, { ...init, mode: "open" }); };
"""
WRITTEN = {path.stem for path in LESSONS.glob("*.py")}
PAGES = ["", "syllabus/", "glossary/", "references/"] + [f"lessons/{p.slug}/" for p in SYLLABUS]


@pytest.fixture(scope="module")
def served_site(built_site, assets_fetched) -> Path:
    """The site as `make site` builds it, with MathJax and mermaid served from the site."""
    if not assets_fetched:
        unavailable("cannot fetch the site's JavaScript (make assets): npm or the registry is unreachable")
    return built_site


class _Handler(http.server.SimpleHTTPRequestHandler):
    prefix = "/"

    def translate_path(self, path: str) -> str:
        path = path.split("?", 1)[0].split("#", 1)[0]
        if not path.startswith(self.prefix):
            return str(Path(self.directory) / "__outside_the_site__")
        return super().translate_path("/" + path[len(self.prefix):])

    def log_message(self, *args):  # keep pytest's output clean
        pass


@pytest.fixture(scope="module")
def server(served_site):
    """Serve the site on 127.0.0.1 under /<repo>/, as GitHub Pages serves a project site."""
    prefix = f"/{publish_settings().repository.split('/')[1]}/"
    handler = type("Handler", (_Handler,), {"prefix": prefix})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(served_site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}{prefix}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    with chromium(TIMEOUT_MS) as launched:
        yield launched


@dataclass
class Visit:
    """What happened while one page loaded."""

    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions
    failed: list[str] = field(default_factory=list)  # local requests that failed or returned >= 400
    external: list[str] = field(default_factory=list)  # requests that left the machine (blocked)


def _opener(browser, server, **context_options):
    """Open pages of the site in one shared context (so the browser cache works as a reader's does).

    Chromium resolves no host but 127.0.0.1, so a page that needs anything off the
    machine breaks here exactly as it would offline; every such request is recorded.
    The only one allowed is mkdocs-material's repository badge (stars and forks from
    GitHub's API): it is decoration, and the theme shows the page without it.
    """
    badge = f"https://api.github.com/repos/{publish_settings().repository}"
    context = browser.new_context(**{"viewport": VIEWPORT, **context_options})
    context.add_init_script(OPEN_SHADOW_ROOTS)
    pages = []

    def console(visit: Visit, message) -> None:
        if message.type == "error" and not (message.location or {}).get("url", "").startswith(badge):
            visit.errors.append(f"console: {message.text} ({(message.location or {}).get('url', '')})")

    def request(visit: Visit, req) -> None:
        if not req.url.startswith((server, "data:", "blob:", badge)):
            visit.external.append(req.url)

    def open_(path: str):
        visit = Visit()
        page = context.new_page()
        pages.append(page)
        page.set_default_timeout(TIMEOUT_MS)
        page.on("console", lambda m: console(visit, m))
        page.on("pageerror", lambda e: visit.errors.append(f"exception: {e}"))
        page.on("request", lambda r: request(visit, r))
        page.on("requestfailed", lambda r: visit.failed.append(f"{r.url} ({r.failure})")
                if r.url.startswith(server) else None)
        page.on("response", lambda r: visit.failed.append(f"{r.url} ({r.status})")
                if r.status >= 400 and r.url.startswith(server) else None)
        response = page.goto(server + path, wait_until="load")
        assert response is not None and response.ok, f"{path}: HTTP {response and response.status}"
        return page, visit

    def close():
        for page in pages:
            page.close()
        context.close()

    return open_, close


@pytest.fixture(scope="module")
def open_page(browser, server):
    """Pages at desktop width (1280 px)."""
    open_, close = _opener(browser, server)
    yield open_
    close()


@pytest.fixture(scope="module")
def open_phone_page(browser, server):
    """Pages on a 400 px wide phone (a touch screen, as a phone reports itself)."""
    open_, close = _opener(browser, server, viewport=PHONE, is_mobile=True, has_touch=True)
    yield open_
    close()


@pytest.fixture(scope="module")
def open_dark_page(browser, server):
    """Pages for a reader whose system prefers dark mode (the palette follows it)."""
    open_, close = _opener(browser, server, color_scheme="dark")
    yield open_
    close()


def page_name(path: str) -> str:
    return path.strip("/").replace("/", "-") or "home"


def wait_for_math(page, path: str) -> int:
    """Every arithmatex span holds MathJax output, none of it a TeX error. Returns the count."""
    spans = page.locator(".arithmatex").count()
    if spans:
        page.wait_for_function(
            "() => [...document.querySelectorAll('.arithmatex')].every(s => s.querySelector('mjx-container'))"
        )
    assert page.locator("mjx-merror").count() == 0, f"{path}: MathJax reports a TeX error"
    return page.locator(".arithmatex mjx-container").count()


def open_all_sections(page) -> None:
    """Open every folded lesson section the way a reader does: with the "Open all sections" button."""
    if page.locator("details.course-section").count() == 0:
        return
    toggle = page.locator(".course-sections__toggle")
    assert toggle.is_visible(), "a folded lesson offers the button that opens every section"
    if toggle.inner_text().strip() == toggle.get_attribute("data-open"):
        toggle.click()
    page.wait_for_function("() => [...document.querySelectorAll('details.course-section')].every(d => d.open)")


def wait_for_diagrams(page, path: str, expected: int) -> None:
    """Every mermaid block became an SVG (and not mermaid's "syntax error" picture)."""
    if not expected:
        return
    page.wait_for_function(
        """n => {
            const hosts = [...document.querySelectorAll('div.mermaid')];
            return hosts.length >= n && hosts.every(h => h.shadowRoot && h.shadowRoot.querySelector('svg'));
        }""",
        arg=expected,
    )
    report = page.evaluate(
        """() => [...document.querySelectorAll('div.mermaid')].map(h => {
            const svg = h.shadowRoot.querySelector('svg');
            const box = svg.getBoundingClientRect();
            const error = svg.getAttribute('aria-roledescription') === 'error' || /Syntax error/.test(svg.textContent);
            return {width: box.width, height: box.height, error};
        })"""
    )
    for n, diagram in enumerate(report):
        assert not diagram["error"], f"{path}: mermaid diagram {n + 1} failed to parse"
        assert diagram["width"] > 50 and diagram["height"] > 20, f"{path}: mermaid diagram {n + 1} is empty"


_ids: dict[Path, set[str]] = {}


def ids_in(path: Path) -> set[str]:
    if path not in _ids:
        text = path.read_text(encoding="utf-8", errors="ignore")
        _ids[path] = set(re.findall(r'\sid="([^"]+)"', text)) | set(re.findall(r'\sname="([^"]+)"', text))
    return _ids[path]


def broken_links(page, server: str, site: Path) -> list[str]:
    """Internal links whose file or anchor does not exist in the build."""
    broken = []
    origin = "{0.scheme}://{0.netloc}/".format(urllib.parse.urlsplit(server))
    hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
    for href in sorted(set(hrefs)):
        if not href.startswith(server):
            if href.startswith(origin):  # a root-relative link breaks when the site is not at /
                broken.append(f"{href} (outside the site's folder)")
            continue
        parsed = urllib.parse.urlsplit(href)
        relative = urllib.parse.unquote(parsed.path)[len(urllib.parse.urlsplit(server).path):]
        target = site / relative
        if target.is_dir() or relative == "":
            target = target / "index.html"
        if not target.is_file():
            broken.append(f"{href} (no file {target.relative_to(site)})")
            continue
        fragment = urllib.parse.unquote(parsed.fragment)
        if fragment and target.suffix == ".html" and fragment not in ids_in(target):
            broken.append(f"{href} (no anchor #{fragment})")
    return broken


def check_colab(page, server: str, site: Path, slug: str) -> None:
    """The Colab button opens the notebook this build published, on the pages branch."""
    settings = publish_settings()
    links = page.eval_on_selector_all("a[href^='https://colab.research.google.com/']", "a => a.map(x => x.href)")
    assert len(links) == 1, f"{slug}: expected one Open in Colab link, found {links}"
    match = re.fullmatch(r"https://colab\.research\.google\.com/github/([^/]+/[^/]+)/blob/([^/]+)/(.+)", links[0])
    assert match, f"{slug}: {links[0]} is not Colab's /github/<owner>/<repo>/blob/<branch>/<path> form"
    repository, branch, path = match.groups()
    published = f"{settings.repository}@{settings.pages_branch}"
    assert f"{repository}@{branch}" == published, f"{slug}: Colab opens {repository}@{branch}, the site is {published}"
    assert path == f"notebooks/{slug}.ipynb", f"{slug}: Colab opens {path}"
    assert (site / path).is_file(), f"{slug}: the build did not publish {path}"
    response = page.request.get(server + path)
    assert response.ok, f"{slug}: GET {path} answered {response.status}"
    nb = nbformat.reads(response.text(), as_version=4)
    nbformat.validate(nb)
    nbformat.read(site / path, as_version=4)
    setup = next(cell for cell in nb.cells if cell.cell_type == "code")
    assert setup.source.startswith(MARK_BEGIN), f"{slug}: the notebook does not start with the Colab bootstrap"
    downloads = page.eval_on_selector_all("a[download]", "a => a.map(x => x.getAttribute('href'))")
    assert any(d.endswith(f"notebooks/{slug}.ipynb") for d in downloads), f"{slug}: no Download notebook link"
    assert any(d.endswith(f"notebooks/{slug}.py") for d in downloads), f"{slug}: no Download .py link"


@pytest.mark.parametrize("path", PAGES, ids=[page_name(p) for p in PAGES])
def test_page_works_offline(open_page, server, served_site, path):
    start = time.perf_counter()
    page, visit = open_page(path)
    html_file = served_site / path / "index.html"
    static = html_file.read_text(encoding="utf-8")
    typeset = wait_for_math(page, path)
    open_all_sections(page)  # diagrams in folded sections are drawn once a reader opens them
    wait_for_diagrams(page, path, static.count('class="mermaid"'))
    slug = path.strip("/").split("/")[-1]
    if path == "":
        assert typeset > 0, "the home page shows the retrieval loss: MathJax must typeset it"
        assert static.count('class="mermaid"') >= 1, "the home page draws the architecture"
    if path.startswith("lessons/") and slug in WRITTEN:
        check_colab(page, server, served_site, slug)
        if 'class="arithmatex"' in static:
            assert typeset > 0, f"{path}: the lesson has formulas but none was typeset"
    elif path.startswith("lessons/"):
        assert page.get_by_text("Coming soon").count() > 0, f"{path}: a planned lesson's page says it is coming"
    assert broken_links(page, server, served_site) == [], f"{path}: broken internal links"
    page.wait_for_timeout(200)  # let late console messages arrive
    assert visit.external == [], f"{path}: requests left the machine: {visit.external}"
    assert visit.failed == [], f"{path}: failed requests: {visit.failed}"
    assert visit.errors == [], f"{path}: console errors: {visit.errors}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{page_name(path)}.png", full_page=path in ("", "syllabus/"))
    assert time.perf_counter() - start < 30, f"{path}: the page took over 30 s to render"


FOLDED = f"lessons/{max(WRITTEN)}/" if WRITTEN else None  # the longest lessons come last


@pytest.mark.skipif(FOLDED is None, reason="no lesson has a student edition yet")
def test_a_long_lesson_reads_as_folded_sections_that_links_open(open_page, open_phone_page, served_site):
    """The folded page is much shorter; a link into a folded section opens it; the button opens them all."""
    static = (served_site / FOLDED / "index.html").read_text(encoding="utf-8")
    exercises = re.findall(r'<details class="course-section">.*?<h3 id="(exercise-[^"]+)"', static, re.S)
    assert exercises, f"{FOLDED}: a folded section holds an exercise heading"
    for opener in (open_page, open_phone_page):
        page, visit = opener(FOLDED)
        contents = page.locator("nav.course-sections")
        assert contents.is_visible() and contents.locator("a").count() >= 3, "the contents box is on the page"
        folded_height = page.evaluate("() => document.documentElement.scrollHeight")
        shown = page.evaluate("() => [...document.querySelectorAll('details.course-section')].map(d => d.open)")
        assert shown[0] and not any(shown[1:]), "section 1 is open, the others folded"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        contents.scroll_into_view_if_needed()
        page.screenshot(path=SCREENSHOTS / f"folded-{page.viewport_size['width']}px-{page_name(FOLDED)}.png")
        page.goto(page.url.split("#")[0] + f"#{exercises[0]}")  # a link from another page, or a search result
        page.wait_for_function("id => document.getElementById(id).closest('details').open", arg=exercises[0])
        heading = page.evaluate("id => document.getElementById(id).getBoundingClientRect().top", exercises[0])
        assert 0 <= heading < page.viewport_size["height"], "the linked heading is on screen"
        page.reload()
        open_all_sections(page)
        open_height = page.evaluate("() => document.documentElement.scrollHeight")
        assert open_height > 2 * folded_height, f"folded {folded_height} px, open {open_height} px"
        assert page.locator(".course-sections__toggle").inner_text().strip() == "Fold all sections"
        assert visit.errors == [], visit.errors


def test_search_finds_the_annoy_lesson(open_page, server):
    page, visit = open_page("")
    page.locator("label.md-search__icon, input.md-search__input").first.click()
    page.locator("input.md-search__input").press_sequentially("Annoy", delay=20)
    page.wait_for_selector(".md-search-result__item a")
    hits = page.eval_on_selector_all(".md-search-result__item a", "a => a.map(x => x.href)")
    assert any("/lessons/" in hit for hit in hits), f"searching 'Annoy' found no lesson: {hits}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "search-annoy.png")
    assert visit.errors == [] and visit.external == [], visit


def test_dark_mode_toggle(open_page):
    page, visit = open_page("")
    scheme = page.evaluate("() => document.body.getAttribute('data-md-color-scheme')")
    page.locator("form[data-md-component=palette] label:visible").first.click()
    page.wait_for_function("s => document.body.getAttribute('data-md-color-scheme') !== s", arg=scheme)
    assert page.evaluate("() => document.body.getAttribute('data-md-color-scheme')") in {"default", "slate"}
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "home-toggled-scheme.png")
    assert visit.errors == [], visit.errors


LEGIBILITY = """() => {
    const codes = [...document.querySelectorAll('.md-content pre:not(.cell-output):not(.mermaid) > code')];
    const size = el => parseFloat(getComputedStyle(el).fontSize);
    const inExercise = c => c.closest('.admonition, details');
    const labels = [];
    for (const host of document.querySelectorAll('div.mermaid')) {
        const svg = host.shadowRoot && host.shadowRoot.querySelector('svg');
        if (!svg) continue;
        const box = svg.viewBox.baseVal;
        const scale = box && box.width ? svg.getBoundingClientRect().width / box.width : 1;
        for (const t of svg.querySelectorAll('text, foreignObject span, foreignObject div')) {
            if (t.textContent.trim() && !t.querySelector('span, div'))
                labels.push({text: t.textContent.trim().slice(0, 40), px: size(t) * scale});
        }
    }
    return {
        // a code block scrolls sideways, or reaches past the screen (on a phone, blocks run edge to edge)
        overflowing: codes.filter(c => c.scrollWidth > c.clientWidth + 1 ||
                                  c.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
                          .map(c => c.textContent.trim().split('\\n')[0].slice(0, 60)),
        exercise: [...new Set(codes.filter(inExercise).map(size))],
        other: [...new Set(codes.filter(c => !inExercise(c)).map(size))],
        labels,
        figures: [...document.querySelectorAll('.md-content figure')].map(f => {
            const img = f.querySelector('img');
            const cap = f.querySelector('figcaption');
            return {alt: img ? img.alt : '', caption: cap ? cap.textContent.trim() : '',
                    width: img ? img.getBoundingClientRect().width : 0,
                    column: f.closest('.md-content__inner').getBoundingClientRect().width,
                    zoom: !!(img && img.closest('a.glightbox'))};
        }),
    };
}"""
LEGIBLE_PAGES = [""] + [f"lessons/{slug}/" for slug in sorted(WRITTEN)]


def check_legibility(page, path: str, static: str, code_fits: bool = True) -> dict:
    """What a reader notices. ``code_fits``: the screen is wide enough for the lessons' 120 columns
    (on a phone a code block scrolls sideways inside itself, keeping Python's indentation)."""
    open_all_sections(page)
    wait_for_diagrams(page, path, static.count('class="mermaid"'))
    seen = page.evaluate(LEGIBILITY)
    if code_fits:
        assert seen["overflowing"] == [], f"{path}: code blocks wider than their container: {seen['overflowing'][:3]}"
    sizes = set(seen["exercise"]) | set(seen["other"])
    assert len(sizes) <= 1, f"{path}: exercise code {seen['exercise']} px, other code {seen['other']} px"
    assert all(size >= MIN_TEXT_PX for size in sizes), f"{path}: code text of {sizes} px"
    small = [label for label in seen["labels"] if label["px"] < MIN_TEXT_PX]
    assert not small, f"{path}: diagram text under {MIN_TEXT_PX} px: {small[:3]}"
    alts = [figure["alt"] for figure in seen["figures"]]
    for figure in seen["figures"]:
        assert figure["alt"] and figure["alt"] != "Figure from the reference run", f"{path}: a generic alt text"
        assert figure["caption"], f"{path}: a figure without a caption ({figure['alt']})"
        assert figure["zoom"], f"{path}: a figure that does not open in the lightbox ({figure['alt']})"
        assert figure["width"] >= 0.95 * figure["column"] - 40, f"{path}: a figure narrower than the column"
    assert len(set(alts)) == len(alts), f"{path}: figures share an alt text: {alts}"
    return seen


@pytest.mark.parametrize("path", LEGIBLE_PAGES, ids=[page_name(p) for p in LEGIBLE_PAGES])
def test_pages_are_legible_at_desktop_width(open_page, served_site, path):
    page, visit = open_page(path)
    seen = check_legibility(page, path, (served_site / path / "index.html").read_text(encoding="utf-8"))
    if path == "":
        assert seen["labels"], "the home page's diagrams have text labels"


@pytest.mark.parametrize("path", LEGIBLE_PAGES, ids=[page_name(p) for p in LEGIBLE_PAGES])
def test_pages_are_legible_on_a_phone(open_phone_page, served_site, path):
    page, visit = open_phone_page(path)
    assert page.evaluate("() => window.innerWidth") == PHONE["width"]
    check_legibility(page, path, (served_site / path / "index.html").read_text(encoding="utf-8"), code_fits=False)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"], \
        f"{path}: the page itself scrolls sideways on a phone"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"phone-{page_name(path)}.png")
    shown = page.locator("div.mermaid, .md-content .admonition.question, .md-content .highlight").first
    if shown.count():  # what legibility is about: a diagram or code on the phone's screen
        shown.scroll_into_view_if_needed()
        page.screenshot(path=SCREENSHOTS / f"phone-{page_name(path)}-code.png")
    assert visit.errors == [] and visit.external == [], visit


def test_a_lesson_in_dark_mode(open_dark_page, served_site):
    path = f"lessons/{sorted(WRITTEN)[-1]}/" if WRITTEN else ""
    page, visit = open_dark_page(path)
    assert page.evaluate("() => document.body.getAttribute('data-md-color-scheme')") == "slate", \
        "a reader who prefers dark mode gets the dark palette"
    check_legibility(page, path, (served_site / path / "index.html").read_text(encoding="utf-8"))
    background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert background != "rgb(255, 255, 255)", "the page is dark"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"dark-{page_name(path)}.png")
    exercise = page.locator(".md-content .admonition.question").first
    if exercise.count():
        exercise.scroll_into_view_if_needed()
        page.screenshot(path=SCREENSHOTS / f"dark-{page_name(path)}-exercise.png")
    assert visit.errors == [] and visit.external == [], visit
