"""The feedback page: the worker's exporter renders the document nbconvert's ``HTMLExporter`` does."""

from __future__ import annotations

import base64

import nbformat
from bs4 import BeautifulSoup
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from grader.grading.feedback import NO_ALT, FeedbackExporter, with_alt_text

PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")).decode()


def graded_notebook() -> nbformat.NotebookNode:
    """A small autograded notebook: prose with a picture, a plot output, a passed and a failed test."""
    passed = {"grade": True, "solution": False, "locked": True, "grade_id": "t1", "points": 1, "score": 1}
    failed = {**passed, "grade_id": "t2", "score": 0}
    nb = new_notebook(cells=[
        new_markdown_cell(f"# Lesson\n\nA picture: <img src='data:image/png;base64,{PNG}'> and `code` <b>bold</b>."),
        new_code_cell("plot()", outputs=[new_output("display_data", data={"image/png": PNG, "text/plain": "<Fig>"})]),
        new_code_cell("assert 1 + 1 == 2", metadata={"nbgrader": passed}, outputs=[
            new_output("stream", name="stdout", text="<script>alert(1)</script>\n")]),
        new_code_cell("assert f() == 3", metadata={"nbgrader": failed}, outputs=[
            new_output("error", ename="AssertionError", evalue="f() should be 3", traceback=["AssertionError: f"])]),
    ], metadata={"language_info": {"name": "python"}})
    for number, cell in enumerate(nb.cells):
        cell.id = f"cell-{number}"  # the same ids in both renderings
    return nb


def render(exporter_class, tmp_path) -> str:
    from nbgrader.converters import GenerateFeedback
    from nbgrader.coursedir import CourseDirectory

    app = GenerateFeedback(coursedir=CourseDirectory(root=str(tmp_path)))
    resources = {"nbgrader": {"notebook": "lesson", "score": 1, "max_score": 2, "late_penalty": 0}}
    html, _ = exporter_class(config=app.config).from_notebook_node(graded_notebook(), resources)
    return html


def test_feedback_exporter_renders_the_same_document_as_nbconverts_html_exporter(tmp_path):
    from nbconvert.exporters import HTMLExporter

    theirs = BeautifulSoup(render(HTMLExporter, tmp_path), "html.parser")
    ours = BeautifulSoup(render(FeedbackExporter, tmp_path), "html.parser")
    images = ours.find_all("img")
    assert len(images) == 2 and all(img.get("alt") == NO_ALT for img in images)
    text = ours.get_text()
    assert "Score: 1.0 / 2.0" in text and "AssertionError: f" in text and "<script>alert(1)</script>" in text
    assert not ours.find_all("script", string=lambda code: code and "alert(1)" in code)  # printed text stays text
    assert ours == theirs


def test_alt_text_goes_only_on_img_tags_that_have_none():
    assert with_alt_text('<img src="a.png">') == f'<img alt="{NO_ALT}" src="a.png">'
    assert with_alt_text("<IMG/>") == f'<img alt="{NO_ALT}"/>'
    kept = '<img alt="a plot" src="a.png"> <imgx src="b"> &lt;img src="c"&gt; <p>img</p>'
    assert with_alt_text(kept) == kept
