"""The course's publishing settings, read from the one place they are written.

``mkdocs.yml`` holds ``extra.course.repository`` (``owner/name`` on GitHub: where the
*student distribution* is published — this repository's pages branch, or a separate
public repository), ``extra.course.branch`` (the branch with the course source) and
``extra.course.pages_branch`` (the branch GitHub Pages serves, where the site, its
notebooks and the course library's wheel are published). The Colab bootstrap (it installs
that wheel), the "Open in Colab" links, the site's address and the branch ``make deploy``
pushes to are built from them.

Leave ``repository`` empty and :func:`publish_settings` finds it: the CI's
``GITHUB_REPOSITORY``, else the git remote ``origin``, else a placeholder with a loud
warning. Committed files (the student editions) are built from :func:`load_settings`,
the file as written, so they never depend on the machine that builds them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import yaml

from grader.lessons import ROOT


class _TolerantLoader(yaml.SafeLoader):
    """mkdocs.yml uses ``!!python/name:`` tags that plain safe loading rejects."""


_TolerantLoader.add_multi_constructor("", lambda loader, suffix, node: None)


PLACEHOLDER = "recsys-course/movie-recommender"  # the last resort: publishing with it links nowhere
WHEELS = "wheels"  # the folder of the distribution (and the site) that holds the course library's wheel


@dataclass(frozen=True)
class CourseSettings:
    repository: str
    branch: str
    pages_branch: str
    source: str = "mkdocs.yml"  # where ``repository`` came from

    @property
    def github_url(self) -> str:
        return f"https://github.com/{self.repository}"

    @property
    def pages_url(self) -> str:
        """Where GitHub Pages serves the pages branch of a project repository."""
        owner, name = self.repository.split("/")
        return f"https://{owner.lower()}.github.io/{name}/"

    def colab_url(self, notebook: str) -> str:
        """Colab opens notebooks straight from GitHub; ours are published on the pages branch."""
        return f"https://colab.research.google.com/github/{self.repository}/blob/{self.pages_branch}/notebooks/{notebook}"

    @property
    def wheel_name(self) -> str:
        from movierec import __version__

        return f"movierec-{__version__}-py3-none-any.whl"

    @property
    def wheel_url(self) -> str:
        """The course library's wheel as the published distribution serves it (never the source repository)."""
        return f"{self.pages_url}{WHEELS}/{self.wheel_name}"

    @property
    def pip_spec(self) -> str:
        """What Colab's ``pip install`` is given to fetch the course library."""
        return self.wheel_url


@cache
def load_settings(path: Path = ROOT / "mkdocs.yml") -> CourseSettings:
    config = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_TolerantLoader)
    course = (config.get("extra") or {}).get("course") or {}
    missing = [key for key in ("repository", "branch", "pages_branch") if not course.get(key)]
    if missing:
        raise ValueError(f"{path}: set extra.course.{', extra.course.'.join(missing)} (see README, 'Publishing')")
    repo = str(course["repository"])
    if repo.count("/") != 1:
        raise ValueError(f"{path}: extra.course.repository must look like 'owner/name', got {repo!r}")
    return CourseSettings(repo, str(course["branch"]), str(course["pages_branch"]))


def git_remote_repository(root: Path = ROOT) -> str | None:
    """``owner/name`` of the git remote ``origin`` when it is on GitHub."""
    try:
        url = subprocess.run(["git", "-C", str(root), "remote", "get-url", "origin"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"github\.com[:/]([^/\s]+)/([^/\s]+?)(?:\.git)?/?$", url)
    return f"{match[1]}/{match[2]}" if match else None


@cache
def publish_settings(path: Path = ROOT / "mkdocs.yml") -> CourseSettings:
    """The settings the site and the distribution are built with: the repository found if not written."""
    written = load_settings(path)
    if written.repository != PLACEHOLDER:
        return written
    for source, found in (("GITHUB_REPOSITORY", os.environ.get("GITHUB_REPOSITORY", "")),
                          ("git remote origin", git_remote_repository())):
        if found and found.count("/") == 1:
            return replace(written, repository=found, source=source)
    print(f"WARNING: publishing settings: no repository in {path.name} (extra.course.repository), no "
          f"GITHUB_REPOSITORY and no GitHub remote 'origin': using the placeholder {PLACEHOLDER!r}. Colab links "
          "and the Colab install will not resolve until you set one.", file=sys.stderr)
    return replace(written, source="placeholder")
