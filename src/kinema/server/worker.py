"""Workers: claim a queued job, run the pipeline, write the outputs, record the result.

A worker is a loop (a thread inside `kinema serve`, or the process `kinema worker`) around
`Store.claim`. While a job runs, a heartbeat thread renews its lease every third of the lease
time, and the pipeline's progress callback records progress (denoising steps mapped to 0..99;
100 when the files are written). If the lease is lost (the job was deleted, or the worker was
stalled so long that another took the job over) the callback stops the generation and nothing is
recorded. A generation that raises marks the job failed with the error; the worker carries on.
On shutdown, a running job is handed back to the queue.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
import threading
import traceback
import uuid
from pathlib import Path
from typing import Any, Callable

from ..errors import KinemaError
from .config import ServerConfig
from .media import write_outputs
from .store import Store, loads

log = logging.getLogger("kinema.server")


class _LeaseLost(Exception):
    pass


class _Stopping(Exception):
    pass


def worker_name(tag: str = "w") -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{tag}:{uuid.uuid4().hex[:6]}"


def load_pipeline(config: ServerConfig):
    """The pipeline a worker runs: --model PATH, or the shipped default."""
    from ..pipeline import Pipeline

    return Pipeline.from_pretrained(config.model_path)


class _Heartbeat(threading.Thread):
    def __init__(self, store: Store, video_id: str, worker: str, lease: float):
        super().__init__(name=f"heartbeat-{video_id}", daemon=True)
        self.store, self.video_id, self.worker, self.lease = store, video_id, worker, lease
        self.done = threading.Event()
        self.lost = False

    def run(self) -> None:
        while not self.done.wait(self.lease / 3.0):
            try:
                if not self.store.heartbeat(self.video_id, self.worker, self.lease):
                    self.lost = True
                    return
            except Exception:  # a busy database: try again next beat
                log.warning("heartbeat for %s failed", self.video_id, exc_info=True)


class Worker:
    def __init__(self, store: Store, config: ServerConfig, pipeline: Any = None,
                 pipeline_loader: Callable[[ServerConfig], Any] = load_pipeline, name: str | None = None,
                 stop: threading.Event | None = None, wake: threading.Event | None = None,
                 idle_poll: float = 0.5):
        self.store = store
        self.config = config
        self._pipeline = pipeline
        self._loader = pipeline_loader
        self.name = name or worker_name()
        self.stop = stop or threading.Event()
        self.wake = wake
        self.idle_poll = idle_poll
        self.jobs_done = 0

    @property
    def pipeline(self):
        if self._pipeline is None:
            self._pipeline = self._loader(self.config)
        return self._pipeline

    # ----- loop -----------------------------------------------------------------------------
    def run_forever(self) -> None:
        while not self.stop.is_set():
            try:
                worked = self.run_once()
            except Exception:  # the database went away for a moment: keep the worker alive
                log.exception("worker %s: error between jobs", self.name)
                worked = False
            if not worked:
                if self.wake is not None:
                    if self.wake.wait(self.idle_poll):
                        self.wake.clear()
                else:
                    self.stop.wait(self.idle_poll)

    def run_once(self) -> bool:
        """Claim and run one job; False if there was none."""
        row = self.store.claim(self.name, self.config.lease_seconds)
        if row is None:
            return False
        self.process(row)
        return True

    # ----- one job ------------------------------------------------------------------------------
    def process(self, row) -> None:
        cfg, store = self.config, self.store
        beat = _Heartbeat(store, row.id, self.name, cfg.lease_seconds)
        beat.start()
        folder = cfg.videos_dir() / row.id
        try:
            video = self._generate(row, beat)
            if beat.lost:
                raise _LeaseLost()
            video.metadata.update({"id": row.id, "served_as": row.model, "request_prompt": row.prompt})
            write_outputs(video, folder)
            result = {"width": video.width, "height": video.height, "num_frames": video.num_frames,
                      "fps": video.fps, "duration": video.duration, "steps": video.metadata.get("steps"),
                      "worker": self.name}
            retention = float(loads(row.params).get("retention_seconds", cfg.retention_seconds))
            if store.complete(row.id, self.name, result, retention):
                self.jobs_done += 1
                self._drop_uploads(row.id)
            else:
                self._after_lost(row.id, folder)
        except _LeaseLost:
            self._after_lost(row.id, folder)
        except _Stopping:
            store.release(row.id, self.name)
        except Exception as exc:
            code = "invalid_request" if isinstance(exc, KinemaError) else "generation_failed"
            message = str(exc) or type(exc).__name__
            if not isinstance(exc, KinemaError):
                message = f"{type(exc).__name__}: {message}"
                print(f"kinema worker {self.name}: job {row.id} failed:\n{traceback.format_exc()}",
                      file=sys.stderr, flush=True)
            try:
                if store.fail(row.id, self.name, code, message):
                    self._drop_uploads(row.id)
            except Exception:
                log.exception("could not record the failure of %s", row.id)
        finally:
            beat.done.set()

    def _after_lost(self, video_id: str, folder: Path) -> None:
        """The job is no longer ours: if it was deleted, remove what we may have written."""
        if self.store.get_video(video_id) is None:
            shutil.rmtree(folder, ignore_errors=True)
            self._drop_uploads(video_id)

    def _drop_uploads(self, video_id: str) -> None:
        shutil.rmtree(self.config.uploads_dir() / video_id, ignore_errors=True)

    def _generate(self, row, beat: _Heartbeat):
        cfg = self.config
        params = loads(row.params)
        pipe = self.pipeline
        last = [-1]

        def progress(done: int, total: int) -> None:
            if self.stop.is_set():
                raise _Stopping()
            if beat.lost:
                raise _LeaseLost()
            p = min(99, int(100 * done / max(total, 1)))
            if p != last[0]:
                last[0] = p
                if not self.store.heartbeat(row.id, self.name, cfg.lease_seconds, progress=p):
                    raise _LeaseLost()

        kwargs: dict[str, Any] = {
            "num_frames": params["num_frames"],
            "size": f"{params['width']}x{params['height']}",
            "fps": params["fps"],
            "seed": int(params["seed"]),
            "progress": progress,
        }
        for key in ("steps", "guidance", "negative_prompt", "strength"):
            if params.get(key) is not None:
                kwargs[key] = params[key]
        if params.get("loop"):
            kwargs["loop"] = True
        if params.get("mode"):
            kwargs["mode"] = params["mode"]
        if params.get("image"):
            kwargs["image"] = str(cfg.data_dir / params["image"])
        if params.get("video"):
            source = cfg.data_dir / params["video"]
            if not source.exists():
                raise KinemaError("the source video of this job is no longer available")
            kwargs["video"] = str(source)
        prompt = params.get("effective_prompt") or row.prompt
        progress(0, 1)
        return pipe.generate(prompt, **kwargs)


def start_threads(store: Store, config: ServerConfig, pipelines: list, stop: threading.Event,
                  wake: threading.Event | None = None) -> list[threading.Thread]:
    """One worker thread per pipeline (pipelines are not thread-safe, so each has its own)."""
    threads = []
    for i, pipe in enumerate(pipelines):
        w = Worker(store, config, pipeline=pipe, name=worker_name(f"t{i}"), stop=stop, wake=wake,
                   idle_poll=0.5)
        t = threading.Thread(target=w.run_forever, name=f"kinema-worker-{i}", daemon=True)
        t.start()
        threads.append(t)
    return threads


def cleanup_expired(store: Store, config: ServerConfig, now: float | None = None) -> list[str]:
    """Remove the files of videos past expires_at (the rows stay, marked expired)."""
    removed = []
    for row in store.expired(now):
        shutil.rmtree(config.videos_dir() / row.id, ignore_errors=True)
        shutil.rmtree(config.uploads_dir() / row.id, ignore_errors=True)
        store.mark_purged(row.id)
        removed.append(row.id)
    return removed


def janitor(store: Store, config: ServerConfig, stop: threading.Event) -> threading.Thread:
    def loop() -> None:
        while not stop.wait(config.cleanup_interval):
            try:
                cleanup_expired(store, config)
            except Exception:
                log.exception("clean-up of expired videos failed")

    t = threading.Thread(target=loop, name="kinema-janitor", daemon=True)
    t.start()
    return t
