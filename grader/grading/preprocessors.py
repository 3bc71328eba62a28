"""nbgrader preprocessors the course's autograder plugs into nbgrader's own pipeline.

* :class:`SandboxedExecute` replaces nbgrader's ``Execute`` in ``autograde``: the same
  per-cell timeout with interrupt, plus a per-notebook time budget (cells that would
  start after it are not run and fail with ``NotebookTimeout``), a byte cap on each
  cell's output (a cell printing megabytes keeps its first ``max_output_bytes``), and
  the kernel guard of :mod:`grader.sandbox.kernel_guard` before every test cell. What happened
  is written to ``report_path`` as JSON for the grader.
* :class:`TrimTracebacks` runs in ``generate_feedback`` after nbgrader's ``ClearHiddenTests``:
  it cuts every traceback of a test cell down to its last line (``AssertionError:
  message``); nbgrader's own feedback quotes the failing hidden ``assert`` line by line.
"""

from __future__ import annotations

import ast
import builtins
import json
import secrets
import time
from pathlib import Path

from nbclient.exceptions import DeadKernelError
from nbclient.util import ensure_async, run_sync
from nbformat.notebooknode import NotebookNode
from nbgrader import utils
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Bool, Integer, Unicode

TIMEOUT_ENAMES = {"CellTimeoutError", "NotebookTimeout"}
BUILTIN_NAMES = frozenset(dir(builtins))


def builtin_names_used(source: str) -> list[str]:
    """Builtin names a test cell reads (so the guard can un-shadow them for it)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in BUILTIN_NAMES})


def error_output(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


class SandboxedExecute(Execute):
    notebook_timeout = Integer(0, help="Seconds the whole notebook may run (0: no limit).").tag(config=True)
    max_output_bytes = Integer(1_000_000, help="Output bytes kept per cell (-1: no limit).").tag(config=True)
    guard = Bool(False, help="Run grader.sandbox.kernel_guard.check before each test cell.").tag(config=True)
    report_path = Unicode("", help="Where to write the JSON report of timeouts and tampering.").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        self._deadline = time.monotonic() + self.notebook_timeout if self.notebook_timeout > 0 else None
        self._bytes: dict[int, int] = {}
        self._report = {"timeouts": [], "notebook_timeout": False, "tampered": [], "unshadowed": [],
                        "truncated": [], "seconds": 0.0, "died": ""}
        start = time.monotonic()
        try:
            return super().preprocess(nb, resources, km)
        finally:
            self._report["seconds"] = round(time.monotonic() - start, 3)
            if self.report_path:
                Path(self.report_path).write_text(json.dumps(self._report, indent=1), encoding="utf-8")

    def _remaining(self) -> float | None:
        return None if self._deadline is None else self._deadline - time.monotonic()

    def _get_timeout(self, cell):
        timeout = super()._get_timeout(cell)
        remaining = self._remaining()
        if remaining is None:
            return timeout
        budget = max(1, int(remaining + 0.999))
        return budget if timeout is None else min(timeout, budget)

    @staticmethod
    def _label(cell: NotebookNode, index: int) -> str:
        return cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {index}"

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if cell.cell_type != "code" or not cell.source.strip():
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        if self._report["died"]:
            cell.outputs = [error_output("DeadKernelError", f"not run: the kernel died in {self._report['died']}")]
            return cell
        remaining = self._remaining()
        if remaining is not None and remaining <= 0:
            self._report["notebook_timeout"] = True
            cell.outputs = [error_output(
                "NotebookTimeout", f"not run: the notebook used up its {self.notebook_timeout} s time limit")]
            return cell
        try:
            if self.guard and utils.is_grade(cell):
                await self._guard(cell, cell_index)
            cell = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        except DeadKernelError:
            # A crash in compiled code, os._exit(): this cell and the ones after it fail; the tests
            # that already ran keep their points, and the grader reports the death as an error.
            self._report["died"] = self._label(cell, cell_index)
            cell.outputs = [error_output("DeadKernelError", "the kernel died while running this cell")]
            return cell
        if any(o.get("output_type") == "error" and o.get("ename") in TIMEOUT_ENAMES for o in cell.outputs):
            self._report["timeouts"].append(self._label(cell, cell_index))
            remaining = self._remaining()
            if remaining is not None and remaining <= 1:
                self._report["notebook_timeout"] = True
        return cell

    execute_cell = run_sync(async_execute_cell)

    async def _guard(self, cell: NotebookNode, index: int) -> None:
        """Ask the kernel guard to restore the test's world; record what it had to restore."""
        nonce = secrets.token_hex(8)
        expression = (f"__import__('grader.sandbox.kernel_guard', fromlist=['check'])"
                      f".check({nonce!r}, {builtin_names_used(cell.source)!r})")
        label = self._label(cell, index)
        msg_id = await ensure_async(self.kc.execute(
            "", silent=True, store_history=False, user_expressions={"guard": expression}, allow_stdin=False))
        try:
            reply = await self.async_wait_for_reply(msg_id)
        except Exception as exc:  # noqa: BLE001 - a kernel that cannot answer the guard is suspect
            self._report["tampered"].append(f"before {label}: the kernel guard did not answer ({exc})")
            return
        try:
            answer = reply["content"]["user_expressions"]["guard"]
            report = json.loads(ast.literal_eval(answer["data"]["text/plain"]))
        except Exception:  # noqa: BLE001
            content = (reply or {}).get("content", {})
            self._report["tampered"].append(f"before {label}: the kernel guard did not run ({content.get('status')})")
            return
        if report.get("nonce") != nonce:
            self._report["tampered"].append(f"before {label}: the kernel guard's answer was forged")
        for problem in report.get("tampered", []):
            self._report["tampered"].append(f"before {label}: {problem}")
        for name in report.get("unshadowed", []):
            self._report["unshadowed"].append(f"{label}: {name}")

    def output(self, outs, msg, display_id, cell_index):
        if self.max_output_bytes < 0 or msg.get("msg_type") == "error":  # errors decide the grade: always kept
            return super().output(outs, msg, display_id, cell_index)
        content = msg.get("content", {})
        size = len(content.get("text", "")) + sum(len(str(v)) for v in (content.get("data") or {}).values())
        used = self._bytes.get(cell_index, 0)
        self._bytes[cell_index] = used + size
        if used + size <= self.max_output_bytes:
            return super().output(outs, msg, display_id, cell_index)
        if used <= self.max_output_bytes:  # the first output over the cap: keep what fits, say so
            self._report["truncated"].append(f"cell {cell_index}")
            kept = max(0, self.max_output_bytes - used)
            if msg.get("msg_type") == "stream" and kept:
                outs.append(NotebookNode(output_type="stream", name=content.get("name", "stdout"),
                                         text=content.get("text", "")[:kept]))
            outs.append(NotebookNode(output_type="stream", name="stderr", text=(
                f"\n... output truncated by the grader: this cell printed more than "
                f"{self.max_output_bytes:,} bytes ...\n")))
        return None


class TrimTracebacks(NbGraderPreprocessor):
    """Test cells in feedback: every traceback cut to its last line (``AssertionError: message``).

    nbgrader's feedback shows whole tracebacks, and a traceback quotes the failing test
    line by line — hidden ones too. The hidden regions themselves are removed by
    nbgrader's own ``ClearHiddenTests``, which runs before this.
    """

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and utils.is_grade(cell):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    ename, evalue = output.get("ename", "Error"), output.get("evalue", "")
                    output.traceback = [f"{ename}: {evalue}" if evalue else ename]
        return cell, resources


class ReusableFeedback:
    """nbgrader's ``GenerateFeedback`` that keeps its HTML exporter between runs.

    nbgrader builds a new exporter, and so compiles its Jinja templates again, for every
    run; a grading worker renders one feedback page per job, so it keeps one.
    """

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
                    self._kept = self.exporter_class(parent=self, config=self.config)
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


SAFE_MIMETYPES = ("text/plain", "image/png", "image/jpeg")  # data a browser shows as text or a picture, never runs


def hidden_test_lines(nb: NotebookNode, min_length: int = 8) -> set[str]:
    """The stripped lines inside the hidden-test regions of the notebook's test cells."""
    from grader.markers import BEGIN_HIDDEN, END_HIDDEN

    lines: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type != "code" or not utils.is_grade(cell):
            continue
        inside = False
        for line in cell.source.splitlines():
            if BEGIN_HIDDEN in line:
                inside = True
            elif END_HIDDEN in line:
                inside = False
            elif inside and len(line.strip()) >= min_length:
                lines.add(line.strip())
    return lines


def _scrub(text: str, hidden: set[str]) -> str:
    if not hidden or not text:
        return text
    kept = [line for line in text.splitlines(keepends=True) if not any(h in line for h in hidden)]
    return "".join(kept)


class SafeFeedbackOutputs(NbGraderPreprocessor):
    """Outputs in feedback are plain data, and no line of a hidden test survives anywhere in them.

    Runs first in ``generate_feedback``, while the test cells still hold their hidden regions:
    it learns those lines, then rewrites every output of every cell. Rich outputs a browser
    would interpret (HTML, SVG, JavaScript, Markdown, LaTeX, widgets) are reduced to their
    ``text/plain`` form, which the HTML exporter escapes; a student's ``<script>`` shows as
    text. Any output line that contains a hidden-test line — a notebook can read the test
    being run (``In``, the calling frame) and print it — is dropped, as are such lines in
    error messages.
    """

    def preprocess(self, nb, resources):
        hidden = hidden_test_lines(nb)
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            for output in cell.get("outputs", []):
                kind = output.get("output_type")
                if kind == "stream":
                    output.text = _scrub(output.get("text", ""), hidden)
                elif kind in ("display_data", "execute_result"):
                    data = output.get("data", {})
                    if "text/plain" not in data and not any(m in data for m in SAFE_MIMETYPES):
                        data["text/plain"] = f"[{', '.join(sorted(data)) or 'an output'} not shown in feedback]"
                    output.data = NotebookNode({m: data[m] for m in SAFE_MIMETYPES if m in data})
                    if "text/plain" in output.data:
                        output.data["text/plain"] = _scrub(output.data["text/plain"], hidden)
                    output.metadata = NotebookNode({})
                elif kind == "error":
                    output.evalue = _scrub(output.get("evalue", ""), hidden)
                    output.traceback = [_scrub(line, hidden) for line in output.get("traceback", [])]
        return nb, resources
