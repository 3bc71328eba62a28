"""The grading settings: everything that decides a grade, and so enters a result's resume key."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path


@dataclass
class GradingConfig:
    """How a submission is graded. ``check``, ``course`` and ``autograde`` differ only in these."""

    cell_timeout: int = 900  # seconds one cell may run
    notebook_timeout: int = 3600  # seconds the whole notebook may run
    memory: int = 8 << 30  # bytes of address space for the kernel (RLIMIT_AS)
    processes: int = 4096  # processes and threads of one kernel (its pids cgroup, RLIMIT_NPROC of its uid)
    max_output_bytes: int = 1_000_000  # output kept per cell
    seed: int = 42  # PYTHONHASHSEED, random, numpy; lessons' setup_lesson seeds TensorFlow
    threads: int = 1  # BLAS / TensorFlow threads per kernel: fixed, so results never depend on --jobs
    sandbox: bool = True  # namespaces + unprivileged uid when available (else limits only)
    guard: bool = True  # the kernel guard before every test cell
    env: dict[str, str] = field(default_factory=dict)  # extra kernel environment (e.g. COURSE_QUICK)
    # Not part of the key: how the grading is run, not what it computes.
    grace: int = 180  # seconds on top of notebook_timeout before a worker is stopped
    uid_base: int = 62000  # worker n runs its kernels as uid/gid uid_base + n
    max_file_size: int = 20 << 20  # bytes: a larger submission is an invalid row, never read

    KEY_EXCLUDES = ("grace", "uid_base", "max_file_size")  # the cap decides whether a file is read, not its grade

    def key(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in self.KEY_EXCLUDES}

    def with_env(self, **env: str) -> GradingConfig:
        """A copy whose kernels also get ``env`` (e.g. ``COURSE_QUICK="1"``)."""
        return GradingConfig.from_dict({**asdict(self), "env": {**self.env, **env}})

    @classmethod
    def from_dict(cls, data: dict) -> GradingConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            known = ", ".join(sorted(names))
            raise ValueError(f"unknown grading settings: {', '.join(sorted(unknown))} (known: {known})")
        return cls(**data)

    @classmethod
    def from_toml(cls, path: Path) -> GradingConfig:
        import tomllib

        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        return cls.from_dict(data.get("autograde", data))
