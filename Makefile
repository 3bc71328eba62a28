# Quick start: `make course` (the main job) and `make test` (the test suite).
# Both create .venv and install the pinned packages on first use.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# The offline MovieLens copy beside the repository, when there is one; otherwise TFDS downloads.
SHARED_TFDS := $(abspath ../shared/tensorflow_datasets)
ifneq ($(wildcard $(SHARED_TFDS)),)
export TFDS_DATA_DIR ?= $(SHARED_TFDS)
endif
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export NO_MKDOCS_2_WARNING := 1
export PYTHONHASHSEED := 0

.PHONY: help install build course test test-fast test-group lint assets site serve dist deploy colab-check clean

help:
	@echo "make course     build editions, notebooks and site; run and grade every lesson; write build/course-report.json"
	@echo "make test       run the test suite (what CI runs)"
	@echo "make test-fast  the tests that execute no lesson, kernel, model or browser (< 2 min)"
	@echo "make build      regenerate student editions, library modules and notebooks"
	@echo "make lint       ruff over the code and the lessons"
	@echo "make site       build the site into build/site;  make serve  previews it at http://127.0.0.1:8000"
	@echo "make assets     fetch MathJax and mermaid (npm) so the site works offline"
	@echo "make dist       build the student distribution (site, notebooks, library wheel) into build/dist"
	@echo "make deploy     publish build/dist (and nothing else) to the pages branch"
	@echo "make colab-check  run every published notebook in imitations of Colab's current and previous runtimes"

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ipykernel)" >/dev/null
	@touch $@

install: $(STAMP)

build: $(STAMP)
	$(PY) -m grader build

course: $(STAMP)
	$(PY) -m grader.site.assets --optional
	$(PY) -m grader course

# Two pytest-xdist workers: tests/conftest.py sends every test that needs one of the costly shared
# fixtures (the lessons' grading run, the built site, the crafted classes) to the same worker.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS)

# Everything that executes no lesson, kernel, model or browser (< 2 minutes).
FAST := not (lessons or grading or serving or site or browser)
test-fast: $(STAMP)
	$(PY) -m pytest -m "$(FAST)"

# One group of the suite, as CI runs them in parallel: make test-group MARK=lessons (or "$(FAST)").
test-group: $(STAMP)
	$(PY) -m pytest -m "$(MARK)"

lint: $(STAMP)
	$(PY) -m ruff check .

# MathJax and mermaid at the versions pinned in grader/site/assets.py, into build/vendor/
# (npm pack, integrity-checked); the site serves them itself instead of loading a CDN.
# `site`, `serve` and `course` fetch them too, but go on without them (CDN) if npm is missing.
assets: $(STAMP)
	$(PY) -m grader.site.assets

site: build
	$(PY) -m grader.site.assets --optional
	$(PY) -m mkdocs build --strict

serve: build
	$(PY) -m grader.site.assets --optional
	$(PY) -m mkdocs serve

# The student distribution in build/dist: the site (student pages), notebooks, .py editions and
# the course library's wheel — never solutions/ or hidden tests (tests/test_site.py greps it).
dist: build
	$(PY) -m grader.site.assets --optional
	$(PY) -m grader dist

# Publish exactly build/dist to the pages branch of extra.course in mkdocs.yml.
# Run `make course` first so the lesson pages show the reference run's figures and results.
deploy: dist
	$(PY) -m grader deploy

# A release check, not a test: rebuilds Colab's current and previous runtimes (pinned in
# grader/build/colab_images.toml; downloads TensorFlow from PyPI), installs the course from
# build/dist with the real setup cell and runs every notebook with the reference answers.
# Writes build/colab-check.json and build/colab-check.md. One image: ARGS="--image previous".
colab-check: dist
	nice -n 10 $(PY) -m grader.build.colab_check $(ARGS)

clean:
	rm -rf build
