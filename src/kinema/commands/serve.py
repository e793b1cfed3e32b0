"""`kinema serve`: the OpenAI-compatible HTTP service (+ web page); `kinema worker`: a job worker.

    kinema serve [--host H] [--port P] [--data DIR] [--database-url URL] [--model PATH]
                 [--workers N] [--keys-file F]
    kinema worker [--data DIR] [--database-url URL] [--model PATH]

`serve` runs `--workers` generation threads in its own process (default 1; 0 = none, when
separate `kinema worker` processes share the same --data / --database-url).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from ..errors import KinemaError


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="kinema-data", metavar="DIR",
                   help="folder for the job database and video files (default: ./kinema-data)")
    p.add_argument("--database-url", default=None, metavar="URL",
                   help="SQLAlchemy URL of the job database (default: SQLite file DATA/kinema.db; "
                        "e.g. postgresql+psycopg://user@host/kinema)")
    p.add_argument("--model", default=None, metavar="PATH", help="saved pipeline folder (default: the shipped model)")
    p.add_argument("--lease-seconds", type=float, default=30.0, metavar="S",
                   help="a running job's lease; a worker that stops renewing it loses the job after this (default 30)")
    p.add_argument("--max-attempts", type=int, default=3, metavar="N",
                   help="a job whose worker died this many times fails (default 3)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve OpenAI's Videos API and a web page",
                       description="Serve OpenAI's Videos API (an unchanged openai client works with base_url "
                                   "http://HOST:PORT/v1) and a web page at /.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    _common(p)
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="generation threads in this process (default 1; 0: only separate `kinema worker`s)")
    p.add_argument("--keys-file", default=None, metavar="F",
                   help="API keys, one a line (KEY [name=NAME] [max_jobs=N]); also env KINEMA_API_KEYS")
    g = p.add_argument_group("generation")
    g.add_argument("--scale", type=int, default=None, metavar="PX",
                   help="shorter side OpenAI sizes render at (default: the model's default size, 128)")
    g.add_argument("--fps", type=float, default=None, help="frame rate (default: the model's, 12)")
    g.add_argument("--steps", type=int, default=None, help="default denoising steps (default: the model's)")
    g.add_argument("--max-steps", type=int, default=100, help="most steps a request may ask for (default 100)")
    g.add_argument("--openai-seconds-scale", type=float, default=0.5, metavar="X",
                   help="OpenAI's seconds 4/8/12 render X times as long (default 0.5: 2/4/6 s)")
    g.add_argument("--model-name", default=None, help="name the served model answers to (default kinema-tiny "
                                                       "or the --model folder's name)")
    l = p.add_argument_group("limits")
    l.add_argument("--max-active-jobs", type=int, default=4, metavar="N",
                   help="queued + running jobs per key (default 4; a keys file may set max_jobs per key)")
    l.add_argument("--max-prompt-chars", type=int, default=1000, metavar="N", help="(default 1000)")
    l.add_argument("--max-upload-mb", type=float, default=50.0, metavar="MB", help="request body limit (default 50)")
    l.add_argument("--max-pixels", type=int, default=512 * 512, metavar="N",
                   help="pixels per rendered frame for the model's own sizes (default 262144)")
    l.add_argument("--max-image-pixels", type=int, default=4096 * 4096, metavar="N",
                   help="pixels of an uploaded image or video frame, checked before decoding (default 16777216)")
    l.add_argument("--max-frames", type=int, default=257, metavar="N", help="frames per video (default 257)")
    j = p.add_argument_group("jobs")
    j.add_argument("--poll-after-ms", type=int, default=1000, metavar="MS",
                   help="openai-poll-after-ms sent while a job runs (default 1000)")
    j.add_argument("--retention-hours", type=float, default=24.0, metavar="H",
                   help="files are deleted this long after completion (expires_at; default 24; 0: never)")
    j.add_argument("--cleanup-interval", type=float, default=60.0, metavar="S",
                   help="seconds between sweeps for expired files (default 60)")
    p.set_defaults(func=_serve)

    w = sub.add_parser("worker", help="run a job worker beside `kinema serve` (same --data or --database-url)",
                       description="Claim queued video jobs from the shared job database and run them.")
    _common(w)
    w.add_argument("--retention-hours", type=float, default=24.0, metavar="H",
                   help="used only for jobs queued without one (default 24)")
    w.set_defaults(func=_worker)


def _model_defaults(model_path: str | None) -> dict:
    """fps, steps and size saved with the model, read without loading its weights."""
    if model_path is None:
        try:
            from ..pipeline import DEFAULT_MODEL_DIR
        except ImportError:
            return {}
        folder = DEFAULT_MODEL_DIR
    else:
        folder = Path(model_path).expanduser()
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except (OSError, ValueError):
        return {}
    defaults = index.get("defaults") if isinstance(index, dict) else None
    return defaults if isinstance(defaults, dict) else {}


def _positive(value, name: str, allow_zero: bool = False) -> None:
    if value is None:
        return
    if value < 0 or (value == 0 and not allow_zero):
        raise KinemaError(f"{name} must be {'at least 0' if allow_zero else 'positive'}, got {value}")


def _config(args, keys=None):
    from ..server.auth import KeyRing
    from ..server.config import ServerConfig

    _positive(args.lease_seconds, "--lease-seconds")
    _positive(args.max_attempts, "--max-attempts")
    _positive(args.retention_hours, "--retention-hours", allow_zero=True)
    if args.model is not None and not Path(args.model).expanduser().is_dir():
        raise KinemaError(f"--model {args.model}: no such model folder")
    cfg = ServerConfig(data_dir=Path(args.data), database_url=args.database_url, model_path=args.model,
                       keys=keys or KeyRing(), lease_seconds=args.lease_seconds, max_attempts=args.max_attempts,
                       retention_seconds=args.retention_hours * 3600.0)
    try:
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KinemaError(f"--data {args.data}: cannot create the folder ({exc.strerror or exc})") from None
    return cfg


def _load_pipelines(cfg, n: int) -> list:
    from ..server.worker import load_pipeline

    return [load_pipeline(cfg) for _ in range(n)]


def _open_store(cfg):
    from sqlalchemy.exc import SQLAlchemyError

    from ..server.store import Store

    try:
        return Store(cfg.db_url, max_attempts=cfg.max_attempts)
    except (SQLAlchemyError, ImportError) as exc:
        raise KinemaError(f"cannot open the job database {cfg.db_url!r}: {str(exc).splitlines()[0]}") from None


def _serve(args) -> int:
    from ..server.auth import KeyRing, is_loopback

    keys = KeyRing.load(None, args.keys_file)
    if not keys.enabled and not is_loopback(args.host):
        raise KinemaError(f"refusing to listen on {args.host} without API keys: anyone who can reach it could use "
                          "it. Set KINEMA_API_KEYS (comma-separated) or --keys-file, or use --host 127.0.0.1")
    if not 0 <= args.port <= 65535:
        raise KinemaError(f"--port must be 0..65535, got {args.port}")
    if args.workers < 0:
        raise KinemaError(f"--workers must be 0 or more, got {args.workers}")
    for name in ("max_steps", "max_active_jobs", "max_prompt_chars", "max_upload_mb", "max_pixels",
                 "max_image_pixels", "max_frames", "poll_after_ms", "cleanup_interval", "openai_seconds_scale",
                 "scale", "fps", "steps"):
        _positive(getattr(args, name), "--" + name.replace("_", "-"), allow_zero=name == "max_active_jobs")
    cfg = _config(args, keys)
    defaults = _model_defaults(args.model)
    if args.scale is not None:
        cfg.scale = args.scale
    else:
        try:
            cfg.scale = min(int(v) for v in str(defaults.get("size", "128x128")).lower().split("x"))
        except ValueError:
            cfg.scale = 128
    cfg.fps = float(args.fps if args.fps is not None else defaults.get("fps", 12.0))
    cfg.steps = args.steps
    cfg.max_steps = args.max_steps
    cfg.openai_seconds_scale = args.openai_seconds_scale
    cfg.model_name = args.model_name
    cfg.max_active_jobs = args.max_active_jobs
    cfg.max_prompt_chars = args.max_prompt_chars
    cfg.max_upload_bytes = int(args.max_upload_mb * 1024 * 1024)
    cfg.max_pixels = args.max_pixels
    cfg.max_image_pixels = args.max_image_pixels
    cfg.max_frames = args.max_frames
    cfg.poll_after_ms = args.poll_after_ms
    cfg.cleanup_interval = args.cleanup_interval

    import uvicorn

    from ..server.app import create_app
    from ..server.worker import cleanup_expired, janitor, start_threads

    store = _open_store(cfg)
    pipelines = _load_pipelines(cfg, args.workers)
    stop, wake = threading.Event(), threading.Event()
    app = create_app(cfg, store=store, wake=wake)
    cleanup_expired(store, cfg)
    threads = start_threads(store, cfg, pipelines, stop, wake)
    janitor(store, cfg, stop)

    if keys.enabled:
        print(f"kinema serve: {len(keys)} API key(s) configured", file=sys.stderr)
    else:
        print("kinema serve: no API keys configured (KINEMA_API_KEYS or --keys-file): open to anyone on this "
              "machine, so listening on loopback only", file=sys.stderr)
    print(f"kinema serve: model {cfg.served_model}, {args.workers} worker thread(s), data in {cfg.data_dir}, "
          f"http://{args.host}:{args.port}/ (API base_url http://{args.host}:{args.port}/v1)",
          file=sys.stderr, flush=True)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                                           access_log=False, timeout_graceful_shutdown=5))
    # uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-sends the signal to the handler
    # that was installed before it: make that a no-op, so the workers below are stopped cleanly
    # (a running job goes back to the queue) and the command exits 0.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _signum, _frame: None)
    try:
        server.run()
    finally:
        stop.set()
        wake.set()
        for t in threads:
            t.join(timeout=10)
        store.close()
    if not server.started:
        raise KinemaError(f"could not listen on {args.host}:{args.port} (is the port in use?)")
    return 0


def _worker(args) -> int:
    from ..server.worker import Worker, worker_name

    cfg = _config(args)
    store = _open_store(cfg)
    for d in (cfg.videos_dir(), cfg.uploads_dir()):
        d.mkdir(parents=True, exist_ok=True)
    pipeline = _load_pipelines(cfg, 1)[0]
    stop = threading.Event()

    def _on_signal(_signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    worker = Worker(store, cfg, pipeline=pipeline, name=worker_name(f"p{os.getpid()}"), stop=stop, idle_poll=0.5)
    print(f"kinema worker {worker.name}: ready (model {cfg.served_model}, database {cfg.db_url})",
          file=sys.stderr, flush=True)
    try:
        worker.run_forever()
    finally:
        store.close()
    print(f"kinema worker {worker.name}: stopped after {worker.jobs_done} job(s)", file=sys.stderr)
    return 0
