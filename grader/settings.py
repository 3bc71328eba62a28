"""The course's publishing settings, read from the one place they are written.

``mkdocs.yml`` holds ``extra.course.repository`` (``owner/name`` on GitHub),
``extra.course.branch`` (the branch with the course source) and
``extra.course.pages_branch`` (the branch GitHub Pages serves, where the site and its
notebooks are published). The Colab bootstrap, the "Open in Colab" links, the site's
edit links, its address and the branch ``mkdocs gh-deploy`` pushes to are built from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from grader.lessons import ROOT


class _TolerantLoader(yaml.SafeLoader):
    """mkdocs.yml uses ``!!python/name:`` tags that plain safe loading rejects."""


_TolerantLoader.add_multi_constructor("", lambda loader, suffix, node: None)


@dataclass(frozen=True)
class CourseSettings:
    repository: str
    branch: str
    pages_branch: str

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
    def pip_spec(self) -> str:
        """What Colab's ``pip install`` is given to fetch the course library."""
        return f"movierec-course @ git+{self.github_url}@{self.branch}"


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
