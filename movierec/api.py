"""Command line of the recommendation API (lesson 07): export the models, then serve them.

From the repository root::

    python -m movierec.api                    # serve build/models; export it first if it does not exist
    python -m movierec.api export --out build/models [--quick]
    python -m movierec.api serve --models build/models [--tf-serving URL] [--host 127.0.0.1] [--port 8000]

``--tf-serving http://127.0.0.1:8501`` (REST) or ``grpc://127.0.0.1:8500`` sends the model
calls to TensorFlow Serving; without it the exported SavedModels run in this process.
``COURSE_QUICK=1`` (or ``--quick``) trains with the tiny budget the tests use.

Why this module is hand-written: everything the API does — exporting, loading, the
FastAPI app, the TF Serving clients — is library code in :mod:`movierec.serving`,
generated from the cells tagged ``export`` in ``solutions/07_serving.py``. Export cells
may only define functions, classes and constants, so a generated module cannot have an
``if __name__ == "__main__":`` entry point. This file is that entry point and nothing
more: it parses arguments and calls :mod:`movierec.serving`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from movierec.setup import configure_environment, quick_mode, seed_everything

DEFAULT_MODELS = Path("build") / "models"


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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_environment()  # Keras 2 and quiet logs, before TensorFlow is imported
    seed_everything()
    import uvicorn

    from movierec import serving

    if args.command == "export":
        info = serving.export_course_models(args.out, quick=args.quick or quick_mode())
        models = ", ".join(serving.SERVED_MODELS)
        print(f"exported version {info['version']} of {models} and the Annoy index to {args.out}")
        print(f"TF Serving configs: {args.out / 'models.config'} (local), {args.out / 'models.docker.config'} (Docker)")
        return 0
    if args.command is None and not args.models.exists():
        print(f"{args.models} does not exist: training and exporting the models first (this takes a few minutes)")
        serving.export_course_models(args.models, quick=quick_mode())
    try:
        recommender = serving.load_recommender(args.models, tf_serving=args.tf_serving, timeout_s=args.timeout)
    except (serving.ModelDirError, FileNotFoundError, ValueError) as exc:
        print(f"error: cannot start the API: {exc}", file=sys.stderr)
        return 2
    backend = f"TF Serving at {args.tf_serving}" if args.tf_serving else "in-process SavedModels"
    print(f"serving {args.models} ({backend}); versions {recommender.model_versions()}")
    print(f"try: curl 'http://{args.host}:{args.port}/recommend/42?k=5'")
    uvicorn.run(
        serving.create_app(recommender), host=args.host, port=args.port, log_level="warning", access_log=args.access_log
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
