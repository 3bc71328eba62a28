"""The feedback page: nbgrader's ``GenerateFeedback``, kept warm in a worker and without a soup pass.

A grading worker renders one feedback page per job. Two costs of nbgrader's converter
are paid per job for nothing:

* it builds a new HTML exporter, and so compiles its Jinja templates again, for every run
  (:class:`ReusableFeedback` keeps one);
* nbconvert's ``HTMLExporter`` parses every page it renders with BeautifulSoup's
  pure-Python ``html.parser`` and serialises it again, to add ``alt`` text to images and
  ``tabindex`` to JupyterLab's cell classes. On a 400 kB lesson-01 page that pass was a
  quarter of the worker's CPU per job (py-spy). nbgrader's feedback template has none of
  those cell classes, so :class:`FeedbackExporter` only adds the ``alt`` text, with one
  regular expression over tags the template wrote itself (student outputs reach the page
  as escaped text or image data, never as markup: see ``SafeFeedbackOutputs``).

``tests/test_feedback_page.py`` renders the same notebook with both exporters and finds the
same document.
"""

from __future__ import annotations

import re

from nbconvert.exporters import HTMLExporter

NO_ALT = "No description has been provided for this image"  # nbconvert's text for an image without alt
_IMG_WITHOUT_ALT = re.compile(r"<img(?=[\s/>])(?![^>]*\salt=)", re.IGNORECASE)


def with_alt_text(html: str) -> str:
    """``html`` with an ``alt`` attribute on every ``<img>`` tag that has none."""
    return _IMG_WITHOUT_ALT.sub(f'<img alt="{NO_ALT}"', html)


class FeedbackExporter(HTMLExporter):
    """nbconvert's ``HTMLExporter`` for nbgrader's feedback template, without the BeautifulSoup pass."""

    def from_notebook_node(self, nb, resources=None, **kw):
        from nbconvert.exporters.templateexporter import TemplateExporter
        from nbconvert.filters.highlight import Highlight2HTML
        from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter

        info = nb.metadata.get("language_info", {})
        lexer = info.get("pygments_lexer", info.get("name", None))
        self.register_filter("highlight_code",
                             self.filters.get("highlight_code", Highlight2HTML(pygments_lexer=lexer, parent=self)))
        resources = self._init_resources(resources)
        self.register_filter("filter_data_type", WidgetsDataTypeFilter(
            notebook_metadata=self._nb_metadata, parent=self, resources=resources))
        html, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
        return with_alt_text(html), resources


class ReusableFeedback:
    """nbgrader's ``GenerateFeedback`` that keeps one :class:`FeedbackExporter` between runs."""

    def __new__(cls, *args, **kwargs):
        from nbgrader.converters import GenerateFeedback

        class _Reusable(GenerateFeedback):
            _kept = None

            def start(self):
                import os

                from nbconvert.writers import FilesWriter

                self.init_notebooks()
                self.writer = FilesWriter(parent=self, config=self.config)
                if self._kept is None:
                    self._kept = FeedbackExporter(parent=self, config=self.config)
                    for pp in self.preprocessors:
                        self._kept.register_preprocessor(pp)
                self.exporter = self._kept
                here = os.getcwd()
                os.chdir(self.coursedir.root)
                try:
                    self.convert_notebooks()
                finally:
                    os.chdir(here)

        return _Reusable(*args, **kwargs)
