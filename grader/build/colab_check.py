"""``make colab-check``: run every published notebook in an imitation of Colab's runtime.

Colab changes under the course: a new image brings a new Python, TensorFlow or protobuf,
and the setup cell that installs the course library must keep working on it and on the
previous image (Colab's "fallback runtime"). No unit test can see that, because the
packages come from Colab and not from this repository. This check rebuilds the runtime
instead, from the package versions Colab publishes (pinned in ``colab_images.toml``,
next to this file, with the record each comes from):

1. for each image, a fresh virtual environment with that image's Python and its recorded
   versions of TensorFlow, Keras 3, ``tf_keras``, NumPy, protobuf, ``tensorflow-metadata``,
   TFDS, matplotlib, the serving stack and the Jupyter kernel; a stand-in ``google.colab``
   package, imported when the kernel starts, as Colab's own kernel does (the setup cell
   installs only when it sees it);
2. for each lesson, a copy of that environment (every Colab notebook gets its own runtime),
   and the notebook that ``build/dist`` publishes — the one "Open in Colab" opens — with the
   reference answers put into its exercise cells;
3. the notebook runs top to bottom in a kernel of that copy. Its first cell is the real
   generated setup cell; only the address of the course library's wheel is changed, to a
   local HTTP server that serves ``build/dist`` as GitHub Pages would serve it, so pip
   downloads the wheel over HTTP exactly as in Colab. Everything else the setup cell
   installs comes from PyPI.

The result, per image and lesson, is ``passed`` (every cell ran) or ``failed`` (the first
failing cell and its error), with the setup cell's duration, whether pip reported a
dependency conflict, and which of the image's own packages the setup cell replaced; it is
written to ``build/colab-check.json`` and, as a table, to ``build/colab-check.md``. It
downloads TensorFlow, so it is a release check, not a test.

What it cannot see: Colab ships hundreds of packages the lessons never touch (gradio,
torch, ...), and they are not installed here, so pip cannot complain about breaking them.
The "replaced" list is where such a conflict would come from: every Colab package the setup
cell changed is named there.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from grader.lessons import BUILD, Lesson, all_lessons, tags

PINS = Path(__file__).with_name("colab_images.toml")
WORK = BUILD / "colab-check"
REPORT_JSON = BUILD / "colab-check.json"
REPORT_TABLE = BUILD / "colab-check.md"
DIST = BUILD / "dist"
KERNEL_NAME = "colab-check"
WHEEL_URL = re.compile(r"https?://[^\s\"']+/wheels/movierec-[^\s\"'/]+\.whl")
# What pip prints when an install leaves another package's requirement unmet (a red error in Colab).
PIP_CONFLICT = "ERROR: pip's dependency resolver"
METADATA_FIX = "installing tensorflow-metadata"

# The stand-in for Colab's own package. The setup cell only asks whether ``google.colab`` is
# imported (that is how it knows it runs in Colab); no lesson calls into it.
STAND_IN = '''\
"""A stand-in for Colab's ``google.colab`` package, written by grader/build/colab_check.py.

Colab's kernel imports ``google.colab`` when it starts; the course's setup cell installs its
packages only when it finds the module imported. Nothing else of Colab is imitated here.
"""

STAND_IN = True
'''
STARTUP = "import google.colab  # as Colab's kernel does when it starts (grader/build/colab_check.py)\n"


@dataclass(frozen=True)
class ColabImage:
    """One recorded Colab runtime: its Python and the versions of the packages the lessons meet."""

    name: str
    description: str
    record: str
    date: str
    python: str
    interpreter: str
    packages: dict[str, str] = field(default_factory=dict)

    def requirements(self) -> list[str]:
        """``name==version`` for every recorded package, pip first (it is installed before the rest)."""
        return [f"{name}=={version}" for name, version in self.packages.items()]


def load_images(path: Path = PINS) -> list[ColabImage]:
    """The images in the pins file, in the order written (current first)."""
    data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    images = []
    for name, table in data["images"].items():
        missing = [key for key in ("description", "record", "date", "python", "interpreter", "packages")
                   if key not in table]
        if missing:
            raise ValueError(f"{path}: [images.{name}] lacks {', '.join(missing)}")
        images.append(ColabImage(name, table["description"], table["record"], table["date"], table["python"],
                                 table["interpreter"], dict(table["packages"])))
    return images


def write_stand_in(site_packages: Path, ipython_dir: Path) -> None:
    """Install the ``google.colab`` stand-in and the IPython startup file that imports it."""
    package = site_packages / "google" / "colab"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(STAND_IN, encoding="utf-8")
    startup = ipython_dir / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-google-colab.py").write_text(STARTUP, encoding="utf-8")


def with_answers(published: nbformat.NotebookNode, lesson: Lesson) -> nbformat.NotebookNode:
    """The published notebook with the reference answers in its exercise cells (and nothing else changed).

    The grader's own merge does it, so the check runs what a student with perfect answers runs:
    the published setup cell, visible tests and text, not the instructor's notebook.
    """
    from grader.build.editions import instructor_notebook
    from grader.grading.integrity import answers_into_release

    notebook, notes = answers_into_release(instructor_notebook(lesson), published)
    missing = [note for note in notes if "missing" in note or "became" in note]
    if missing:
        raise ValueError(f"{lesson.slug}: the reference answers do not fit the published notebook: {missing}")
    return notebook


def point_wheel_at(notebook: nbformat.NotebookNode, url: str) -> nbformat.NotebookNode:
    """The setup cell with the published wheel's address replaced by ``url`` (the only change to it)."""
    setup = next(c for c in notebook.cells if c.cell_type == "code" and "setup" in tags(c))
    found = WHEEL_URL.findall(setup.source)
    if len(found) != 1:
        raise ValueError(f"the setup cell names the course wheel {len(found)} times, expected once: {found}")
    setup.source = setup.source.replace(found[0], url)
    return notebook


@contextlib.contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """Serve ``folder`` over HTTP on a free loopback port, as GitHub Pages serves the distribution."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _run(command: list[str], log: Path, **kwargs: object) -> None:
    """Run a command, appending its output to ``log``; raise with the log's tail when it fails."""
    with log.open("a", encoding="utf-8") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        process = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, **kwargs)
    if process.returncode != 0:
        tail = log.read_text(encoding="utf-8").splitlines()[-30:]
        raise RuntimeError(f"{' '.join(command[:4])} ... failed ({process.returncode}):\n" + "\n".join(tail))


def build_runtime(image: ColabImage, folder: Path) -> Path:
    """A fresh virtual environment holding ``image``'s recorded packages and the stand-in; returns its folder."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    log = folder.parent / f"{image.name}-install.log"
    log.write_text(f"{image.name}: {image.description}\nrecord: {image.record}\n", encoding="utf-8")
    if not Path(image.interpreter).exists():
        raise FileNotFoundError(f"{image.name}: no Python at {image.interpreter} (set `interpreter` in {PINS.name})")
    _run([image.interpreter, "-m", "venv", str(folder)], log)
    python = str(folder / "bin" / "python")
    requirements = image.requirements()
    pip = [r for r in requirements if r.startswith("pip==")]
    if pip:
        _run([python, "-m", "pip", "install", "--quiet", *pip], log)
    listing = folder / "colab-packages.txt"
    listing.write_text("\n".join(r for r in requirements if not r.startswith("pip==")) + "\n", encoding="utf-8")
    _run([python, "-m", "pip", "install", "--progress-bar", "off", "-r", str(listing)], log)
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    write_stand_in(Path(purelib), folder / "ipython")
    return folder


def kernel_environment(runtime: Path, quick: bool) -> dict[str, str]:
    """The kernel's environment: this machine's, minus what Colab does not set (``TF_USE_LEGACY_KERAS``)."""
    drop = {"TF_USE_LEGACY_KERAS", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "JUPYTER_PATH", "IPYTHONDIR"}
    env = {key: value for key, value in os.environ.items() if key not in drop}
    env["PATH"] = f"{runtime / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["IPYTHONDIR"] = str(runtime / "ipython")
    env["TF_CPP_MIN_LOG_LEVEL"] = env.get("TF_CPP_MIN_LOG_LEVEL", "2")
    if quick:
        env["COURSE_QUICK"] = "1"
    else:
        env.pop("COURSE_QUICK", None)
    return env


def _cell_seconds(cell: nbformat.NotebookNode) -> float | None:
    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return None
    from datetime import datetime

    def parse(stamp: str) -> datetime:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))

    return round((parse(end) - parse(start)).total_seconds(), 1)


def _text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        elif output.get("output_type") == "error":
            parts.append(f"{output.get('ename')}: {output.get('evalue')}")
    return "".join(parts)


def run_notebook(notebook: nbformat.NotebookNode, runtime: Path, quick: bool, timeout: int,
                 log: Path | None = None) -> dict:
    """Execute ``notebook`` in a kernel of ``runtime``; the per-lesson result (status, failing cell, times).

    The notebook gets what the kernel sends it (pip's output included: ipykernel forwards its
    subprocesses' output); the kernel process's own stdout and stderr, which repeat it, go to ``log``.
    """
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    kernels = runtime / "kernels"
    spec = kernels / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(runtime / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab check", "language": "python"}), encoding="utf-8")
    content = runtime / "content"  # Colab's working folder is /content
    content.mkdir(exist_ok=True)
    manager = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))
    client = NotebookClient(notebook, km=manager, timeout=timeout, allow_errors=False, record_timing=True,
                            resources={"metadata": {"path": str(content)}})
    started = time.monotonic()
    result: dict = {"status": "passed", "failed_cell": None, "error": ""}
    with open(log or os.devnull, "w", encoding="utf-8") as kernel_output:
        try:
            client.execute(env=kernel_environment(runtime, quick), stdout=kernel_output, stderr=subprocess.STDOUT)
        except CellExecutionError as error:
            result.update(status="failed", error=_last_line(str(error)))
        except (CellTimeoutError, DeadKernelError) as error:
            result.update(status="failed", error=f"{type(error).__name__}: {_last_line(str(error))}")
    code = [c for c in notebook.cells if c.cell_type == "code"]
    for number, cell in enumerate(code, 1):
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            result["failed_cell"] = number
            result["error"] = _last_line(_text(cell)) or result["error"]
            break
    if result["status"] == "failed" and result["failed_cell"] is None:
        ran = [n for n, c in enumerate(code, 1) if c.get("execution_count")]
        result["failed_cell"] = (ran[-1] if ran else 1)
    setup_output = _text(code[0]) if code else ""
    result.update(
        seconds=round(time.monotonic() - started, 1),
        setup_seconds=_cell_seconds(code[0]) if code else None,
        cells=len(code),
        pip_conflict=PIP_CONFLICT in setup_output,
        metadata_fix=METADATA_FIX in setup_output,
    )
    return result


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def replaced_packages(notebook: nbformat.NotebookNode, image: ColabImage) -> list[str]:
    """Packages of the image that the setup cell replaced (``fastapi 0.141.1 -> 0.165.0``), read from pip.

    The setup cell should leave Colab's own packages alone unless a lesson needs another release:
    every replacement is a chance of breaking something else Colab ships.
    """
    code = [c for c in notebook.cells if c.cell_type == "code"]
    output = _text(code[0]) if code else ""
    shipped = {_normalised(name): version for name, version in image.packages.items()}
    replaced = []
    for line in re.findall(r"^Successfully installed (.+)$", output, re.M):
        for item in line.split():
            name, _, version = item.rpartition("-")
            before = shipped.get(_normalised(name))
            if before is not None and before != version:
                replaced.append(f"{name} {before} -> {version}")
    return replaced


def _last_line(text: str) -> str:
    lines = [line for line in re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines() if line.strip()]
    return lines[-1].strip()[:300] if lines else ""


def check_image(image: ColabImage, lessons: list[Lesson], dist: Path, quick: bool, timeout: int,
                keep: bool = False) -> dict:
    """Build ``image``'s runtime once and run every lesson's notebook in its own copy of it."""
    from grader.settings import publish_settings

    folder = WORK / image.name
    started = time.monotonic()
    print(f"[{image.name}] building the runtime (Python {image.python}, {len(image.packages)} packages) ...",
          flush=True)
    base = build_runtime(image, folder / "base")
    report: dict = {"description": image.description, "record": image.record, "date": image.date,
                    "python": image.python, "interpreter": image.interpreter, "quick": quick,
                    "runtime_seconds": round(time.monotonic() - started, 1), "lessons": {}}
    wheel = dist / "wheels" / publish_settings().wheel_name
    with serve_folder(dist) as address:
        url = f"{address}wheels/{wheel.name}"
        for lesson in lessons:
            published = nbformat.read(dist / "notebooks" / f"{lesson.slug}.ipynb", as_version=4)
            notebook = point_wheel_at(with_answers(published, lesson), url)
            runtime = folder / lesson.slug
            if runtime.exists():
                shutil.rmtree(runtime)
            shutil.copytree(base, runtime, symlinks=True)
            print(f"[{image.name}] {lesson.slug} ...", flush=True)
            result = run_notebook(notebook, runtime, quick, timeout, log=folder / f"{lesson.slug}-kernel.log")
            nbformat.write(notebook, folder / f"{lesson.slug}.ipynb")  # executed, for reading a failure
            result["replaced"] = replaced_packages(notebook, image)
            report["lessons"][lesson.slug] = result
            print(f"[{image.name}] {lesson.slug}: {result['status']} in {result['seconds']} s "
                  f"(setup {result['setup_seconds']} s){'  ' + result['error'] if result['error'] else ''}",
                  flush=True)
            if not keep:
                shutil.rmtree(runtime)
    if not keep:
        shutil.rmtree(base)
    report["seconds"] = round(time.monotonic() - started, 1)
    return report


def format_table(report: dict) -> str:
    """A Markdown table: one row per lesson, one column per image."""
    images = report["images"]
    slugs = sorted({slug for image in images.values() for slug in image["lessons"]})
    lines = ["# Colab check", "",
             "Every published notebook, with the reference answers, run in an imitation of Colab's runtime "
             "(`make colab-check`, grader/build/colab_check.py).", ""]
    for name, image in images.items():
        lines.append(f"- **{name}**: {image['description']}; Python {image['python']} "
                     f"(run with {image['interpreter']}); versions from {image['record']} ({image['date']}); "
                     f"checked {image.get('checked', '?')}, {'quick' if image['quick'] else 'full'} mode, "
                     f"{image.get('seconds', '?')} s in all")
    lines += ["", "| lesson | " + " | ".join(images) + " |", "| --- |" + " --- |" * len(images)]
    for slug in slugs:
        row = []
        for image in images.values():
            result = image["lessons"].get(slug)
            if result is None:
                row.append("not run")
                continue
            cell = f"{'PASS' if result['status'] == 'passed' else 'FAIL'} ({result['seconds']} s; setup " \
                   f"{result['setup_seconds']} s"
            cell += "; pip conflict" if result.get("pip_conflict") else ""
            cell += "; metadata fix" if result.get("metadata_fix") else ""
            cell += f"; replaced {', '.join(result['replaced'])}" if result.get("replaced") else ""
            cell += ")"
            if result["status"] != "passed":
                cell += f" cell {result['failed_cell']}: {result['error']}".replace("|", "\\|")
            row.append(cell)
        lines.append(f"| {slug} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def write_report(images: dict[str, dict], path: Path = REPORT_JSON, table: Path = REPORT_TABLE) -> dict:
    """Merge this run's images into the report (an image checked earlier keeps its last result).

    Two checks of different images may run at once (one per image, to use two cores) and end
    together: a lock file makes their read-merge-write one step each.
    """
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        report = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"images": {}}
        report["images"].update(images)
        order = [image.name for image in load_images()]
        report["images"] = dict(sorted(report["images"].items(),
                                       key=lambda item: order.index(item[0]) if item[0] in order else len(order)))
        path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        table.write_text(format_table(report), encoding="utf-8")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader.build.colab_check", description=__doc__.split("\n")[0])
    parser.add_argument("--image", action="append", help="an image of colab_images.toml (default: all)")
    parser.add_argument("--lesson", action="append", help="a lesson slug, e.g. 04_retrieval (default: all)")
    parser.add_argument("--full", action="store_true", help="full training budgets (default: COURSE_QUICK=1)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell (the setup cell installs)")
    parser.add_argument("--dist", type=Path, default=DIST, help="the student distribution (make dist)")
    parser.add_argument("--keep", action="store_true", help="keep the virtual environments in build/colab-check")
    args = parser.parse_args(argv)
    images = [image for image in load_images() if not args.image or image.name in args.image]
    if args.image and len(images) != len(args.image):
        parser.error(f"unknown image in {args.image}; {PINS.name} has {[i.name for i in load_images()]}")
    lessons = [lesson for lesson in all_lessons() if not args.lesson or lesson.slug in args.lesson]
    if not (args.dist / "notebooks").is_dir() or not list((args.dist / "wheels").glob("*.whl")):
        parser.error(f"{args.dist} holds no notebooks or wheel: run `make dist` first")
    results = {}
    for image in images:
        results[image.name] = check_image(image, lessons, args.dist, quick=not args.full, timeout=args.timeout,
                                          keep=args.keep)
        results[image.name]["checked"] = time.strftime("%Y-%m-%d %H:%M")
    report = write_report(results)
    print(format_table(report))
    print(f"written: {REPORT_JSON.relative_to(BUILD.parent)}, {REPORT_TABLE.relative_to(BUILD.parent)}")
    failed = [f"{name}/{slug}" for name, image in results.items()
              for slug, result in image["lessons"].items() if result["status"] != "passed"]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
