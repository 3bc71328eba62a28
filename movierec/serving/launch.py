"""Starting servers for the serving lessons: free ports, TF Serving and the API as child processes.

Hand-written infrastructure, not generated from a lesson: lessons 07 and 08 import it and
explain it in a paragraph, since a student need not write process management to learn
serving. Everything here binds to 127.0.0.1 only, waits for readiness with a deadline,
and stops the child process when the ``with`` block ends.

* :func:`free_port` — a TCP port on the loopback that nothing listens on right now;
* :func:`model_server` — a real ``tensorflow_model_server`` on a model config file,
  ready once every model in the config has an AVAILABLE version (``FileNotFoundError``
  when the binary is not installed: the course never fakes TF Serving);
* :func:`compare_with_model_server` — serve a model base with a real TF Serving and check
  that it answers over REST and gRPC like the same SavedModels loaded in-process;
* :func:`api_server` — ``python -m movierec.api serve`` on a model base, ready once
  ``/healthz`` answers 200.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import requests

from movierec.serving.transport import TFServingGrpcClient, TFServingRestClient

__all__ = ["api_server", "compare_with_model_server", "free_port", "model_server", "wait_until"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen, grace_s: float) -> None:
    """Ask a child server to exit (SIGTERM), and kill it if it has not within ``grace_s`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_until(ready: Callable[[], bool], process: subprocess.Popen, timeout_s: float, what: str, log: Path) -> None:
    """Poll ``ready()`` until it is true; raise with the log's tail if ``process`` exits, or on the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log.is_file() else ""
            raise RuntimeError(f"{what} exited with code {process.returncode} before it was ready; log:\n{tail}")
        with contextlib.suppress(Exception):
            if ready():
                return
        time.sleep(0.25)
    raise TimeoutError(f"{what} was not ready after {timeout_s:.0f} s (log: {log})")


@contextlib.contextmanager
def model_server(
    config_path: str | Path,
    *,
    rest_port: int | None = None,
    grpc_port: int | None = None,
    binary: str = "tensorflow_model_server",
    startup_timeout_s: float = 120.0,
) -> Iterator[dict[str, str]]:
    """Run a real ``tensorflow_model_server`` on 127.0.0.1 for the duration of a ``with`` block.

    Yields ``{"rest": "http://127.0.0.1:<port>", "grpc": "127.0.0.1:<port>"}`` once every
    model named in the config reports an AVAILABLE version. Raises ``FileNotFoundError``
    when the binary is not installed. The server is stopped on exit.
    """
    executable = shutil.which(binary)
    if executable is None:
        raise FileNotFoundError(f"{binary} is not on PATH; install TF Serving (see lesson 07, section 8)")
    rest_port, grpc_port = rest_port or free_port(), grpc_port or free_port()
    names = re.findall(r'name:\s*"([^"]+)"', Path(config_path).read_text(encoding="utf-8"))
    log = Path(tempfile.mkdtemp(prefix="tfserving-")) / "server.log"
    command = [executable, f"--port={grpc_port}", f"--rest_api_port={rest_port}", f"--model_config_file={config_path}"]
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    urls = {"rest": f"http://127.0.0.1:{rest_port}", "grpc": f"127.0.0.1:{grpc_port}"}

    def all_available() -> bool:
        client = TFServingRestClient(urls["rest"], timeout_s=1.0)
        return all("AVAILABLE" in client.model_versions(name).values() for name in names)

    try:
        wait_until(all_available, process, startup_timeout_s, "tensorflow_model_server", log)
        yield urls
    finally:
        stop(process, grace_s=10)


def compare_with_model_server(base: str | Path, inputs: Mapping[str, Mapping], version: int = 1) -> list[str]:
    """Start TF Serving on ``<base>/models.config`` and compare its answers with the SavedModels in-process.

    ``inputs`` maps a model name to the keyword inputs of its ``serving_default``
    signature. Every output must match over REST and gRPC (floats within 1e-5, the rest
    exactly; ``AssertionError`` otherwise). Returns one line per protocol and model, or,
    when ``tensorflow_model_server`` is not installed, one line saying why nothing ran.
    """
    import numpy as np
    import tensorflow as tf

    if shutil.which("tensorflow_model_server") is None:
        return ["tensorflow_model_server is not installed here: no live TF Serving calls (lesson 07, section 8)."]
    base, lines = Path(base), []
    with model_server(base / "models.config") as urls:
        clients = {"REST": TFServingRestClient(urls["rest"]), "gRPC": TFServingGrpcClient(urls["grpc"])}
        for name, named_inputs in inputs.items():
            local = tf.saved_model.load(str(base / name / str(version))).signatures["serving_default"]
            expected = {key: value.numpy() for key, value in local(**named_inputs).items()}
            versions = clients["REST"].model_versions(name)
            for protocol, client in clients.items():
                answer = client.predict(name, named_inputs, list(expected))
                for key, value in expected.items():
                    if value.dtype.kind == "f":
                        np.testing.assert_allclose(answer[key], value, rtol=1e-5, atol=1e-6)
                    else:
                        assert np.array_equal(answer[key], value), f"{protocol} {name}.{key} differs"
                lines.append(f"{protocol:<5} {name:<12} answers like the in-process model; versions {versions}")
        clients["gRPC"].close()
    return lines


@contextlib.contextmanager
def api_server(
    models: str | Path,
    *,
    port: int | None = None,
    tf_serving: str | None = None,
    startup_timeout_s: float = 180.0,
    env: Mapping[str, str] | None = None,
    options: Sequence[str] = (),
) -> Iterator[str]:
    """Run ``python -m movierec.api serve`` on 127.0.0.1 in a child process; yield its URL.

    ``options`` are more ``serve`` options, e.g. ``("--model-slots", "2")``.

    Waits until ``/healthz`` answers 200 (raising with the log's tail if the process
    exits first), and stops the process when the ``with`` block ends.
    """
    import movierec

    port = port or free_port()
    command = [sys.executable, "-m", "movierec.api", "serve", "--models", str(models)]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    if tf_serving:
        command += ["--tf-serving", tf_serving]
    command += list(options)
    child_env = dict(os.environ)
    root = str(Path(movierec.__file__).resolve().parent.parent)
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, child_env.get("PYTHONPATH", "")]))
    child_env.update(env or {})
    log = Path(tempfile.mkdtemp(prefix="movierec-api-")) / "api.log"
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=child_env)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        return requests.get(f"{url}/healthz", timeout=2).status_code == 200

    try:
        wait_until(healthy, process, startup_timeout_s, "the recommendation API", log)
        yield url
    finally:
        stop(process, grace_s=15)
