"""The site's JavaScript libraries, served by the site itself rather than by a CDN.

The pages need MathJax (the formulas) and mermaid (the diagrams). mkdocs-material
would load them from public CDNs, which fails offline — on a train, behind a strict
firewall, or in CI, where the browser test must prove that every page works with no
network. So the build publishes its own copies under ``assets/vendor/`` in the site.

``python -m grader.site.assets`` (``make assets``) fetches them from the npm registry
with ``npm pack`` at the versions pinned here, checks each tarball against its pinned
``sha512`` integrity (the hash the registry publishes), and unpacks the few files the
site serves into ``build/vendor/``. The MkDocs hook then copies them into the site.
A build without them still works online: the hook falls back to the CDN and says so.
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from grader.lessons import BUILD

VENDOR = BUILD / "vendor"
SITE_PREFIX = "assets/vendor"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str  # the registry's dist.integrity for this exact version
    files: tuple[str, ...]  # glob patterns inside the tarball's package/ folder
    script: str  # the file a page loads, relative to the package folder
    cdn: str  # where mkdocs-material would load it from (the fallback)
    licence: str

    @property
    def stamp(self) -> Path:
        return VENDOR / self.name / ".fetched.json"

    @property
    def site_script(self) -> str:
        return f"{SITE_PREFIX}/{self.name}/{self.script}"


PACKAGES = (
    Package(
        "mathjax", "3.2.2",
        "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
        # The combined TeX component, plus what it loads on demand: TeX extensions
        # (autoload), the CHTML fonts, the context menu and the accessibility tools.
        files=("LICENSE", "es5/tex-mml-chtml.js", "es5/input/*", "es5/output/chtml/fonts/*",
               "es5/ui/*", "es5/a11y/*", "es5/sre/*"),
        script="es5/tex-mml-chtml.js",
        cdn="https://unpkg.com/mathjax@3.2.2/es5/tex-mml-chtml.js",
        licence="Apache-2.0",
    ),
    Package(
        "mermaid", "11.17.2",
        "sha512-V6K3C8EBdEsPFZXSKMJe6ppQOENxuHARr9GvHX4hh47lAbhMRD9qf4oEK7LoaRQxULMa80/qt5gHO73aCleBBg==",
        files=("LICENSE", "dist/mermaid.min.js"),  # the self-contained browser bundle
        script="dist/mermaid.min.js",
        cdn="https://unpkg.com/mermaid@11.17.2/dist/mermaid.min.js",
        licence="MIT",
    ),
)


def integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def is_fetched(package: Package) -> bool:
    """The package is unpacked at its pinned version (the stamp is written last)."""
    try:
        stamp = json.loads(package.stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return stamp.get("integrity") == package.integrity and (VENDOR / package.name / package.script).is_file()


def missing() -> list[Package]:
    return [package for package in PACKAGES if not is_fetched(package)]


def _wanted(member: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(member, pattern) for pattern in patterns)


def unpack(package: Package, tarball: bytes) -> int:
    """Write the wanted files of an npm tarball to ``build/vendor/<name>/``; returns the count."""
    found = integrity(tarball)
    if found != package.integrity:
        raise RuntimeError(f"{package.name}@{package.version}: integrity {found} is not the pinned {package.integrity}")
    target = VENDOR / package.name
    if target.exists():
        shutil.rmtree(target)
    count = 0
    with tempfile.TemporaryFile() as fh:
        fh.write(tarball)
        fh.seek(0)
        with tarfile.open(fileobj=fh, mode="r:gz") as archive:
            for member in archive.getmembers():
                path = PurePosixPath(member.name)
                if not member.isfile() or path.parts[0] != "package" or ".." in path.parts:
                    continue
                inner = PurePosixPath(*path.parts[1:])
                if not _wanted(str(inner), package.files):
                    continue
                out = target / inner
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(archive.extractfile(member).read())
                count += 1
    if not (target / package.script).is_file():
        raise RuntimeError(f"{package.name}@{package.version}: {package.script} is not in the tarball")
    package.stamp.write_text(json.dumps({"version": package.version, "integrity": package.integrity}) + "\n",
                             encoding="utf-8")
    return count


def npm_pack(package: Package, into: Path) -> bytes:
    """Download one pinned tarball with the npm client (its cache makes a second fetch free)."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed (Debian: apt-get install npm); it fetches MathJax and mermaid")
    process = subprocess.run(
        [npm, "pack", f"{package.name}@{package.version}", "--pack-destination", str(into), "--json",
         "--silent", "--no-fund", "--no-audit"],
        capture_output=True, text=True, timeout=600,
    )
    if process.returncode != 0:
        raise RuntimeError(f"npm pack {package.name}@{package.version} failed:\n{process.stderr[-2000:]}")
    filename = json.loads(process.stdout)[0]["filename"]
    return (into / filename).read_bytes()


def fetch(force: bool = False) -> list[str]:
    """Fetch and unpack every package that is missing (or all, with ``force``)."""
    done = []
    with tempfile.TemporaryDirectory() as tmp:
        for package in PACKAGES:
            if force or not is_fetched(package):
                count = unpack(package, npm_pack(package, Path(tmp)))
                done.append(f"{package.name}@{package.version} ({count} files)")
    return done


def site_files() -> dict[str, Path]:
    """Site path → local file, for every fetched package."""
    files = {}
    for package in PACKAGES:
        if not is_fetched(package):
            continue
        root = VENDOR / package.name
        for path in sorted(root.rglob("*")):
            if path.is_file() and path != package.stamp:
                files[f"{SITE_PREFIX}/{package.name}/{path.relative_to(root).as_posix()}"] = path
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader.site.assets", description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="fetch again even if the pinned version is there")
    parser.add_argument("--check", action="store_true", help="fetch nothing; exit 1 if a package is missing")
    parser.add_argument("--optional", action="store_true",
                        help="if fetching fails, say so and exit 0 (the site then loads them from a CDN)")
    args = parser.parse_args(argv)
    if args.check:
        absent = missing()
        for package in absent:
            print(f"missing: {package.name}@{package.version} (run `make assets`)")
        return 1 if absent else 0
    try:
        done = fetch(force=args.force)
    except RuntimeError as exc:
        if args.optional:
            print(f"warning: {exc}\nThe site will load MathJax and mermaid from a CDN (it needs the internet).",
                  file=sys.stderr)
            return 0
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("fetched " + ", ".join(done) if done else "site assets up to date")
    print(f"in {VENDOR.relative_to(BUILD.parent)}/: " + ", ".join(f"{p.name}@{p.version}" for p in PACKAGES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
