"""Command line of the recommendation service (lessons 07 and 08): export the models, then serve them.

From the repository root::

    python -m movierec.api                    # serve build/models; export it first if it does not exist
    python -m movierec.api export --out build/models [--quick]
    python -m movierec.api serve --models build/models [--tf-serving URL] [--host 127.0.0.1] [--port 8000]

``--tf-serving http://127.0.0.1:8501`` (REST) or ``grpc://127.0.0.1:8500`` sends the model
calls to TensorFlow Serving; without it the exported SavedModels run in this process.
``COURSE_QUICK=1`` (or ``--quick``) trains with the tiny budget the tests use. ``serve`` also
installs the demo page at ``/`` (:mod:`movierec.serving.demo`).

Why this module is hand-written: everything the API does — exporting, loading, the
FastAPI app, the TF Serving clients — is library code in the :mod:`movierec.serving`
package (``export``, ``clients`` from ``solutions/07_tf_serving.py``; ``index``, ``service``
from ``solutions/08_service.py``), generated from the cells tagged ``export``. Export cells
may only define functions, classes and constants, so a generated module cannot have an
``if __name__ == "__main__":`` entry point. This file is that entry point: it parses
arguments, calls :mod:`movierec.serving.service`, and runs uvicorn with connection limits.

Connection limits (uvicorn 0.54 with its h11 protocol, the one installed here):

* an idle keep-alive connection is closed after ``KEEP_ALIVE_S`` seconds
  (uvicorn's ``timeout_keep_alive``);
* a request's headers are capped at ``MAX_HEADER_BYTES`` (``h11_max_incomplete_event_size``);
* uvicorn has no header-read timeout: a client that opens a connection and sends its
  request slowly, byte by byte (slowloris), keeps it open forever, since every byte
  cancels the keep-alive timer, and enough such clients exhaust the process's file
  descriptors. :class:`GuardedH11Protocol` closes a connection whose request line and
  headers are not complete ``HEADER_TIMEOUT_S`` seconds after it opened (or after its
  previous response), however slowly it trickles, and keeps at most
  ``MAX_WAITING_CONNECTIONS`` connections waiting for a request, closing the oldest
  beyond that, so descriptors stay bounded whatever the rate of such clients;
* the listen backlog is ``BACKLOG``: asyncio accepts up to that many connections in one
  go before any of them is seen by the protocol, so with uvicorn's default of 2,048 a
  burst of connections alone could exhaust 1,024 descriptors before the cap acts.

Latency under concurrency (``--model-slots``, default one per core): the endpoints are
plain functions that FastAPI runs in a thread pool, so without a limit every concurrent
request runs the models at once; on a small machine they then share cores, the GIL and
TensorFlow's thread pools, and a request's latency depends on how many others it
happens to overlap (a long tail). :class:`ModelQueue` lets at most ``--model-slots``
requests into the app at a time and makes the others wait in arrival order, and each
request's TensorFlow ops run on one thread (a batch of one user and 100 candidates is
too small to gain from more): the latency is then the request's own work plus its
place in the queue.

Processes (``--processes N``, default 1): one Python process runs one request's Python
code at a time (the GIL), so on a 2-core machine a single process cannot use both cores
for the framework and model-call code around the TensorFlow ops. With ``N > 1`` the
command starts N server processes, each loading the models itself (:func:`worker_config`)
with its own queue of ``--model-slots``, and stays as their parent: it owns the port and
hands each new connection to the process with the fewest open connections
(:mod:`movierec.balancer`, which says why a shared listening socket is not enough).
The parent loads the models once too, before it starts them, so a bad model folder is an
error message, not a loop of crashing processes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from movierec.setup import configure_environment, pin_threads, quick_mode, seed_everything, usable_cores

DEFAULT_MODELS = Path("build") / "models"
KEEP_ALIVE_S = 5
HEADER_TIMEOUT_S = 10.0
MAX_HEADER_BYTES = 16 * 1024
MAX_WAITING_CONNECTIONS = 256  # well under the usual limit of 1,024 descriptors per process
BACKLOG = 128  # connections accepted per event-loop turn, at most: 256 + 128 stays far below 1,024


def default_model_slots(processes: int) -> int:
    """Requests inside the app at once, per process (see the module docstring): one per core in all."""
    return max(1, usable_cores() // processes)


class ModelQueue:
    """ASGI middleware: at most ``slots`` HTTP requests inside ``app`` at once; the rest wait in arrival order."""

    def __init__(self, app: Any, slots: int) -> None:
        if slots < 1:
            raise ValueError(f"--model-slots must be at least 1, got {slots}")
        self.app, self.slots = app, slots
        self._limiter: Any = None  # created inside the server's event loop, on the first request

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        import anyio

        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.slots)  # FIFO: waiting requests go in arrival order
        async with self._limiter:
            await self.app(scope, receive, send)


def no_delay(transport: asyncio.BaseTransport) -> None:
    """Send each write of a TCP connection at once (``TCP_NODELAY``).

    asyncio turns Nagle's algorithm off only for a socket whose protocol is ``IPPROTO_TCP``;
    the connections :mod:`movierec.balancer` hands over (and uvicorn's own multi-process
    socket) say 0, so a response's second write waited for the client's delayed ACK
    (measured: 48 ms per request instead of 4 ms).
    """
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a header-read deadline and a cap on connections waiting for a request."""

    header_timeout_s = HEADER_TIMEOUT_S
    max_waiting = MAX_WAITING_CONNECTIONS

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        no_delay(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._waiting_cycle: Any = None
        super().connection_made(transport)
        self._await_request()

    def _waiting(self) -> OrderedDict:
        """This server's connections that wait for a complete request, oldest first."""
        return self.server_state.__dict__.setdefault("waiting_for_request", OrderedDict())

    def _await_request(self) -> None:
        self._stop_waiting()
        self._waiting_cycle = self.cycle
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_deadline)
        waiting = self._waiting()
        waiting[self] = None
        while len(waiting) > self.max_waiting:
            oldest = next(iter(waiting))
            oldest._stop_waiting()
            oldest.transport.close()

    def _stop_waiting(self) -> None:
        if getattr(self, "_header_timer", None) is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self._waiting().pop(self, None)

    def _header_deadline(self) -> None:
        self._header_timer = None
        if self.cycle is self._waiting_cycle:  # no new request began in time
            self._stop_waiting()
            self.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if self._header_timer is not None and self.cycle is not self._waiting_cycle:
            self._stop_waiting()  # a request has arrived: its handler may take as long as it needs

    def on_response_complete(self) -> None:
        self._await_request()  # first: a pipelined request started by the call below cancels it
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)
        closed = self.server_state.__dict__.get("on_connection_closed")  # set by the balancer's processes
        if closed is not None:
            closed()


def server_config(
    app: Any, *, host: str, port: int, access_log: bool = False, http: type[H11Protocol] = GuardedH11Protocol
) -> Any:
    """The ``uvicorn.Config`` the API runs with: the limits described in the module docstring."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=access_log,
        http=http,
        timeout_keep_alive=KEEP_ALIVE_S,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        backlog=BACKLOG,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m movierec.api", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command")
    export = commands.add_parser("export", help="train the models and export a new version of each")
    export.add_argument("--out", type=Path, default=Path(os.environ.get("MOVIEREC_MODELS", DEFAULT_MODELS)))
    export.add_argument("--quick", action="store_true", help="tiny training budget (as COURSE_QUICK=1)")
    serve = commands.add_parser("serve", help="serve GET /recommend/{user_id} and GET /healthz")
    for sub in (parser, serve):
        sub.add_argument(
            "--models",
            type=Path,
            default=Path(os.environ.get("MOVIEREC_MODELS", DEFAULT_MODELS)),
            help="model base written by `export` (default: build/models)",
        )
        sub.add_argument(
            "--tf-serving",
            default=os.environ.get("MOVIEREC_TF_SERVING") or None,
            help="TF Serving URL, http://HOST:8501 or grpc://HOST:8500 (default: in-process models)",
        )
        sub.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for TF Serving per call")
        sub.add_argument("--host", default="127.0.0.1")
        sub.add_argument("--port", type=int, default=8000)
        sub.add_argument("--access-log", action="store_true", help="log every request (off: it costs latency)")
        sub.add_argument(
            "--model-slots",
            type=int,
            default=None,
            help="requests that run the models at once, per process; others queue (default: cores ÷ processes, "
            "at least 1)",
        )
        sub.add_argument(
            "--processes",
            type=int,
            default=1,
            help="server processes, each with its own models; the parent spreads connections over them (default 1)",
        )
    return parser


def export_course_models(base: str | Path, *, quick: bool, seed: int = 42) -> dict:
    """Train both models on the course split (lesson 02) and export them under ``base``: ``api export``.

    Lesson 07's ``train_models`` and lesson 08's ``export_models`` (servables, configs, the
    tuned Annoy index and the rating history); the benchmarks' model cache and the demo
    page's test call it too. Returns ``export_models``'s summary.
    """
    from movierec.serving.index import export_models

    return export_models(base, **train_course_models(quick=quick, seed=seed), seed=seed)


def train_course_models(*, quick: bool, seed: int = 42) -> dict:
    """Both models trained on all 80,000 non-test ratings of the course split (lesson 02).

    Returns ``train`` (a dict of columns), ``movies``, ``retrieval_model`` and ``ranking_model``: the keyword
    arguments of ``export_models``, so tests can keep the trained models as well.
    """
    from movierec.dataset import load_movies
    from movierec.retrieval import read_train_test
    from movierec.serving.export import train_models

    movies = load_movies()
    train, _ = read_train_test(seed=seed)  # the 80,000 training ratings as columns, read once
    retrieval_model, ranking_model = train_models(train, movies, quick=quick, seed=seed)
    return {"train": train, "movies": movies, "retrieval_model": retrieval_model, "ranking_model": ranking_model}


def one_thread_per_request() -> None:
    """Each request's TensorFlow ops on one thread (module docstring); before any op runs."""
    pin_threads(1)


def build_app(models: str | Path, *, tf_serving: str | None, timeout: float, model_slots: int) -> tuple[Any, Any]:
    """``(ASGI app, recommender)``: the models loaded, the endpoints, the demo page and the request queue."""
    from movierec.serving import service
    from movierec.serving.demo import install_demo

    recommender = service.load_recommender(models, tf_serving=tf_serving, timeout_s=timeout)
    return ModelQueue(install_demo(service.create_app(recommender), recommender), model_slots), recommender


def worker_config(settings: dict[str, Any], host: str, port: int, access_log: bool) -> Any:
    """Each process of ``serve --processes N``: its own models, app and request queue; one process's limits."""
    configure_environment()
    seed_everything()
    one_thread_per_request()
    return server_config(build_app(**settings)[0], host=host, port=port, access_log=access_log)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_environment()  # Keras 2 and quiet logs, before TensorFlow is imported
    seed_everything()
    if args.model_slots is None and args.processes >= 1:
        args.model_slots = default_model_slots(args.processes)
    for name, value in (("processes", args.processes), ("model-slots", args.model_slots)):
        if value < 1:
            print(f"error: --{name} must be at least 1, got {value}", file=sys.stderr)
            return 2
    import uvicorn

    if args.command in (None, "serve"):
        one_thread_per_request()

    from movierec.serving import export, modelbase

    if args.command == "export":
        info = export_course_models(args.out, quick=args.quick or quick_mode())
        models = ", ".join(export.SERVED_MODELS)
        print(f"exported version {info['version']} of {models} and the Annoy index to {args.out}")
        print(f"TF Serving configs: {args.out / 'models.config'} (local), {args.out / 'models.docker.config'} (Docker)")
        return 0
    if args.command is None and not args.models.exists():
        print(f"{args.models} does not exist: training and exporting the models first (this takes a few minutes)")
        export_course_models(args.models, quick=quick_mode())
    settings = {"models": str(args.models), "tf_serving": args.tf_serving, "timeout": args.timeout,
                "model_slots": args.model_slots}
    try:
        app, recommender = build_app(**settings)
    except (modelbase.ModelDirError, FileNotFoundError, ValueError) as exc:
        print(f"error: cannot start the API: {exc}", file=sys.stderr)
        return 2
    backend = f"TF Serving at {args.tf_serving}" if args.tf_serving else "in-process SavedModels"
    print(f"serving {args.models} ({backend}); versions {recommender.model_versions()}; "
          f"{args.processes} process{'es' * (args.processes > 1)}")
    print(f"try: curl 'http://{args.host}:{args.port}/recommend/42?k=5', or the demo page http://{args.host}:{args.port}/")
    if args.processes == 1:
        uvicorn.Server(server_config(app, host=args.host, port=args.port, access_log=args.access_log)).run()
        return 0
    from movierec import balancer

    del app, recommender  # each process loads its own copy
    options = {"settings": settings, "host": args.host, "port": args.port, "access_log": args.access_log}
    return balancer.serve(worker_config, options, host=args.host, port=args.port, processes=args.processes,
                          backlog=BACKLOG)


if __name__ == "__main__":
    sys.exit(main())
