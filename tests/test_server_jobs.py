"""Persistent jobs: a worker killed mid-job loses its lease and another worker finishes the job;
a server restart keeps every job and file; atomic claims; expiry clean-up."""

from __future__ import annotations

import threading
import time

import openai
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _client(proc):
    return openai.OpenAI(base_url=proc.base_url + "/v1", api_key="local", max_retries=0, timeout=60)


def _wait(client, video_id, cond, timeout=120.0, what=""):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = client.videos.retrieve(video_id)
        if cond(v):
            return v
        time.sleep(0.05)
    raise AssertionError(f"{video_id}: {what} not reached in {timeout} s: {v}")


def test_killed_worker_job_is_leased_back_and_restart_keeps_everything(server_launch, tmp_path):
    data = tmp_path / "data"
    lease = ["--lease-seconds", "2"]
    serve = server_launch(["--workers", "0", *lease], data=data)
    c = _client(serve)
    slow = c.videos.create(prompt="a large red circle moves right", size="64x64", seconds="1",
                           extra_body={"steps": 100, "seed": 1})
    quick = c.videos.create(prompt="a small white square", size="64x64", seconds="0.5", extra_body={"seed": 2})
    assert c.videos.retrieve(slow.id).status == "queued"      # no worker yet

    a = server_launch(["--lease-seconds", "2"], data=data, command="worker")
    v = _wait(c, slow.id, lambda v: v.status == "in_progress" and v.progress > 0, what="in progress")
    a.kill()                                                  # SIGKILL: no clean-up, the lease just stops
    v = c.videos.retrieve(slow.id)
    assert v.status == "in_progress" and v.progress < 100

    b = server_launch(["--lease-seconds", "2"], data=data, command="worker")
    v = _wait(c, slow.id, lambda v: v.status in ("completed", "failed"), what="done")
    assert v.status == "completed", v.error
    assert v.model_extra["kinema"]["attempts"] == 2          # claimed again after the lease ran out
    assert _wait(c, quick.id, lambda v: v.status == "completed", what="quick done").status == "completed"
    assert b.stop() == 0

    # queued while no worker runs, then the server restarts
    pending = c.videos.create(prompt="a large blue square moves left", size="64x64", seconds="0.5")
    before = {x.id: x for x in c.videos.list(limit=10)}
    mp4 = c.videos.download_content(slow.id).content
    thumb = c.videos.download_content(quick.id, variant="thumbnail").content
    assert serve.stop() == 0

    again = server_launch(["--workers", "1", *lease], data=data)
    c2 = _client(again)
    after = {x.id: x for x in c2.videos.list(limit=10)}
    assert set(after) == set(before) == {slow.id, quick.id, pending.id}
    for vid in (slow.id, quick.id):
        assert after[vid].status == "completed" and after[vid].completed_at == before[vid].completed_at
    assert c2.videos.download_content(slow.id).content == mp4
    assert c2.videos.download_content(quick.id, variant="thumbnail").content == thumb
    assert _wait(c2, pending.id, lambda v: v.status == "completed", what="pending done").status == "completed"


def _store(tmp_path, **kw):
    from kinema.server.config import ServerConfig
    from kinema.server.store import Store

    cfg = ServerConfig(data_dir=tmp_path, **kw)
    return cfg, Store(cfg.db_url, max_attempts=cfg.max_attempts)


def _queue(store, n, owner="local"):
    for i in range(n):
        store.insert_video({"id": f"video_{i:03d}", "owner": owner, "status": "queued", "prompt": "p",
                            "model": "m", "seconds": "4", "size": "64x64", "params": {"seed": i},
                            "created_at": time.time()})


def test_claims_are_atomic_across_threads(tmp_path):
    _cfg, store = _store(tmp_path)
    _queue(store, 30)
    claimed: list[tuple[str, str]] = []
    lock = threading.Lock()

    def claimer(name):
        # separate Store objects: separate connection pools, like separate processes
        from kinema.server.store import Store

        mine = Store(store.url)
        while True:
            row = mine.claim(name, 30)
            if row is None:
                return
            with lock:
                claimed.append((row.id, name))

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [i for i, _ in claimed]
    assert sorted(ids) == [f"video_{i:03d}" for i in range(30)]       # each exactly once
    assert store.claim("late", 30) is None


def test_lease_expiry_and_attempt_limit(tmp_path):
    _cfg, store = _store(tmp_path, max_attempts=2)
    _queue(store, 1)
    assert store.claim("a", 0.2).lease_owner == "a"
    assert store.claim("b", 0.2) is None                      # leased
    time.sleep(0.3)
    assert not store.heartbeat("video_000", "b", 1)          # not b's
    row = store.claim("b", 0.2)
    assert (row.lease_owner, row.attempts) == ("b", 2)
    assert not store.heartbeat("video_000", "a", 1)          # a lost it
    assert not store.complete("video_000", "a", {}, 60)       # and cannot overwrite b's result
    time.sleep(0.3)
    assert store.claim("c", 0.2) is None                      # tried twice: fails instead
    row = store.get_video("video_000")
    assert row.status == "failed" and row.error_code == "worker_lost"


def test_failing_pipeline_marks_job_failed_and_worker_goes_on(tmp_path):
    from kinema.server.worker import Worker
    from kinema.video import Video

    cfg, store = _store(tmp_path)
    for i, prompt in enumerate(["boom", "fine"]):
        store.insert_video({"id": f"video_{i}", "owner": "local", "status": "queued", "prompt": prompt, "model": "m",
                            "seconds": "1", "size": "32x32", "created_at": time.time(),
                            "params": {"seed": 0, "width": 32, "height": 32, "fps": 4, "num_frames": 2}})

    class Flaky:
        def generate(self, prompt, progress=None, **kw):
            if prompt == "boom":
                raise RuntimeError("out of cheese")
            progress(1, 1)
            return Video([[[[0, 0, 0]] * 32] * 32] * 2, fps=4)

    w = Worker(store, cfg, pipeline=Flaky())
    assert w.run_once() and w.run_once() and not w.run_once()
    bad, good = store.get_video("video_0"), store.get_video("video_1")
    assert bad.status == "failed" and bad.error_code == "generation_failed" and "out of cheese" in bad.error_message
    assert good.status == "completed" and (cfg.videos_dir() / "video_1" / "video.mp4").exists()


def test_expired_files_are_cleaned_up(tmp_path):
    from kinema.server.worker import cleanup_expired

    cfg, store = _store(tmp_path)
    _queue(store, 2)
    for vid, keep in (("video_000", 0.01), ("video_001", 3600)):
        store.claim("w", 30)
        (cfg.videos_dir() / vid).mkdir(parents=True)
        (cfg.videos_dir() / vid / "video.mp4").write_bytes(b"x")
        assert store.complete(vid, "w", {}, keep)
    time.sleep(0.05)
    assert cleanup_expired(store, cfg) == ["video_000"]
    assert not (cfg.videos_dir() / "video_000").exists() and (cfg.videos_dir() / "video_001").exists()
    assert store.get_video("video_000").purged and not store.get_video("video_001").purged
    assert cleanup_expired(store, cfg) == []


def _one_job(store, vid="video_0"):
    store.insert_video({"id": vid, "owner": "local", "status": "queued", "prompt": "p", "model": "m",
                        "seconds": "1", "size": "32x32", "created_at": time.time(),
                        "params": {"seed": 0, "width": 32, "height": 32, "fps": 4, "num_frames": 2}})


def test_deleting_a_running_job_stops_its_worker(tmp_path):
    from kinema.server.worker import Worker

    cfg, store = _store(tmp_path)
    _one_job(store)

    class Deleter:
        def generate(self, prompt, progress=None, **kw):
            progress(1, 4)
            store.delete_video("video_0", "local")
            progress(2, 4)
            raise AssertionError("the worker should have stopped this generation")

    w = Worker(store, cfg, pipeline=Deleter())
    assert w.run_once()
    assert store.get_video("video_0") is None and not (cfg.videos_dir() / "video_0").exists()


def test_stopping_worker_hands_its_job_back(tmp_path):
    from kinema.server.worker import Worker

    cfg, store = _store(tmp_path)
    _one_job(store)

    class Slow:
        def generate(self, prompt, progress=None, **kw):
            progress(1, 4)
            w.stop.set()               # e.g. SIGTERM to `kinema worker`, or `kinema serve` shutting down
            progress(2, 4)
            raise AssertionError("the worker should have stopped this generation")

    w = Worker(store, cfg, pipeline=Slow())
    assert w.run_once()
    row = store.get_video("video_0")
    assert row.status == "queued" and row.lease_owner is None and row.attempts == 0
