"""The job store: videos and characters in a SQL database through SQLAlchemy.

By default a SQLite file ``DATA/kinema.db`` in WAL mode (readers never block the one writer, and
several processes - `kinema serve` and any number of `kinema worker` - share it); any SQLAlchemy
URL works too, e.g. ``postgresql+psycopg://user@host/kinema``.

Claiming a job is atomic without holding a transaction open: a worker picks a candidate and then
runs ``UPDATE videos SET status='in_progress', lease_owner=ME, lease_expires=NOW+LEASE ... WHERE
seq=:seq AND (status='queued' OR (status='in_progress' AND lease_expires < NOW))``; the database
serialises the writes, so exactly one worker sees one changed row. (On PostgreSQL the candidate
is selected ``FOR UPDATE SKIP LOCKED`` in the same transaction, so workers don't even collide.)
A running worker renews its lease (heartbeat) every third of the lease time; a worker that dies
stops renewing, its lease runs out, and the job is claimed again by the next worker - unless it
has already been tried `max_attempts` times, when it fails with ``worker_lost``. Every write of a
running job's row is conditioned on ``lease_owner = ME``, so a worker that lost its lease (or
whose video was deleted) notices and stops, and never overwrites another's result.
"""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import (Boolean, Column, Float, Integer, MetaData, String, Table, Text, and_, create_engine,
                        delete, event, func, insert, or_, select, update)
from sqlalchemy.engine import Engine, Row

metadata = MetaData()

videos = Table(
    "videos", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True, index=True),
    Column("owner", String(64), nullable=False, index=True),
    Column("status", String(16), nullable=False, index=True),
    Column("progress", Integer, nullable=False, default=0),
    Column("prompt", Text, nullable=False),
    Column("model", String(64), nullable=False),
    Column("seconds", String(16), nullable=False),
    Column("size", String(16), nullable=False),
    Column("params", Text, nullable=False),          # JSON: what the worker passes to generate()
    Column("result", Text, nullable=True),           # JSON: width, height, num_frames, fps
    Column("remixed_from", String(64), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("completed_at", Float, nullable=True),
    Column("expires_at", Float, nullable=True),
    Column("error_code", String(64), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_expires", Float, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("purged", Boolean, nullable=False, default=False),   # files removed after expiry
)

characters = Table(
    "characters", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True, index=True),
    Column("owner", String(64), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("look", Text, nullable=False),
    Column("facts", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

ACTIVE = ("queued", "in_progress")
TERMINAL = ("completed", "failed")


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False},
                               pool_size=8, max_overflow=16, pool_pre_ping=False)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


class Store:
    def __init__(self, url: str, max_attempts: int = 3):
        self.url = url
        self.engine = make_engine(url)
        self.max_attempts = max_attempts
        self._pg = self.engine.dialect.name == "postgresql"
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # ----- videos -----------------------------------------------------------------------
    def insert_video(self, row: dict[str, Any]) -> None:
        row = dict(row)
        for key in ("params", "result"):
            if isinstance(row.get(key), (dict, list)):
                row[key] = json.dumps(row[key])
        row.setdefault("progress", 0)
        row.setdefault("attempts", 0)
        row.setdefault("purged", False)
        with self.engine.begin() as conn:
            conn.execute(insert(videos).values(**row))

    def get_video(self, video_id: str, owner: str | None = None) -> Row | None:
        q = select(videos).where(videos.c.id == video_id)
        if owner is not None:
            q = q.where(videos.c.owner == owner)
        with self.engine.connect() as conn:
            return conn.execute(q).first()

    def list_videos(self, owner: str, after: str | None = None, limit: int = 20,
                    order: str = "desc") -> tuple[list[Row], bool] | None:
        """A page of the owner's videos and whether more follow; None if `after` is unknown."""
        q = select(videos).where(videos.c.owner == owner)
        with self.engine.connect() as conn:
            if after:
                seq = conn.execute(select(videos.c.seq).where(videos.c.id == after, videos.c.owner == owner)).scalar()
                if seq is None:
                    return None
                q = q.where(videos.c.seq < seq if order == "desc" else videos.c.seq > seq)
            q = q.order_by(videos.c.seq.desc() if order == "desc" else videos.c.seq.asc()).limit(limit + 1)
            rows = list(conn.execute(q))
        return rows[:limit], len(rows) > limit

    def count_active(self, owner: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(videos)
                                    .where(videos.c.owner == owner, videos.c.status.in_(ACTIVE))).scalar() or 0)

    def delete_video(self, video_id: str, owner: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(delete(videos).where(videos.c.id == video_id, videos.c.owner == owner)).rowcount == 1

    # ----- the worker's side ---------------------------------------------------------------
    def _claimable(self, now: float):
        return or_(videos.c.status == "queued",
                   and_(videos.c.status == "in_progress", videos.c.lease_expires < now))

    def claim(self, worker: str, lease_seconds: float) -> Row | None:
        """Atomically take the oldest queued job (or one whose lease ran out); None if none."""
        now = time.time()
        if self._pg:
            while True:
                with self.engine.begin() as conn:
                    cand = conn.execute(select(videos.c.seq, videos.c.status, videos.c.attempts)
                                        .where(self._claimable(now)).order_by(videos.c.seq).limit(1)
                                        .with_for_update(skip_locked=True)).first()
                    if cand is None:
                        return None
                    if cand.status == "in_progress" and cand.attempts >= self.max_attempts:
                        conn.execute(self._lost_update(cand.seq, now))
                        continue
                    conn.execute(self._claim_update(cand.seq, worker, now, lease_seconds))
                return self._get_seq(cand.seq)
        with self.engine.connect() as conn:
            cands = list(conn.execute(select(videos.c.seq, videos.c.status, videos.c.attempts)
                                      .where(self._claimable(now)).order_by(videos.c.seq).limit(8)))
        for cand in cands:
            with self.engine.begin() as conn:
                if cand.status == "in_progress" and cand.attempts >= self.max_attempts:
                    conn.execute(self._lost_update(cand.seq, now))
                    continue
                if conn.execute(self._claim_update(cand.seq, worker, now, lease_seconds)).rowcount == 1:
                    break
        else:
            return None
        row = self._get_seq(cand.seq)
        return row if row is not None and row.lease_owner == worker else None

    def _claim_update(self, seq: int, worker: str, now: float, lease_seconds: float):
        return (update(videos).where(videos.c.seq == seq, self._claimable(now))
                .values(status="in_progress", lease_owner=worker, lease_expires=now + lease_seconds,
                        attempts=videos.c.attempts + 1, started_at=func.coalesce(videos.c.started_at, now)))

    def _lost_update(self, seq: int, now: float):
        return (update(videos).where(videos.c.seq == seq, videos.c.status == "in_progress",
                                     videos.c.lease_expires < now)
                .values(status="failed", completed_at=now, lease_owner=None, lease_expires=None,
                        error_code="worker_lost",
                        error_message=f"the worker running this job stopped {self.max_attempts} times"))

    def _get_seq(self, seq: int) -> Row | None:
        with self.engine.connect() as conn:
            return conn.execute(select(videos).where(videos.c.seq == seq)).first()

    def _mine(self, video_id: str, worker: str):
        return and_(videos.c.id == video_id, videos.c.lease_owner == worker, videos.c.status == "in_progress")

    def heartbeat(self, video_id: str, worker: str, lease_seconds: float, progress: int | None = None) -> bool:
        """Renew the lease (and record progress); False if the job is no longer this worker's."""
        values: dict[str, Any] = {"lease_expires": time.time() + lease_seconds}
        if progress is not None:
            values["progress"] = int(progress)
        with self.engine.begin() as conn:
            return conn.execute(update(videos).where(self._mine(video_id, worker)).values(**values)).rowcount == 1

    def complete(self, video_id: str, worker: str, result: dict, retention_seconds: float) -> bool:
        now = time.time()
        with self.engine.begin() as conn:
            return conn.execute(update(videos).where(self._mine(video_id, worker)).values(
                status="completed", progress=100, completed_at=now, result=json.dumps(result),
                expires_at=(now + retention_seconds) if retention_seconds > 0 else None,
                lease_owner=None, lease_expires=None)).rowcount == 1

    def fail(self, video_id: str, worker: str, code: str, message: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(update(videos).where(self._mine(video_id, worker)).values(
                status="failed", completed_at=time.time(), error_code=code, error_message=message[:2000],
                lease_owner=None, lease_expires=None)).rowcount == 1

    def release(self, video_id: str, worker: str) -> bool:
        """Give a running job back to the queue (a worker shutting down), keeping its progress at 0."""
        with self.engine.begin() as conn:
            return conn.execute(update(videos).where(self._mine(video_id, worker)).values(
                status="queued", progress=0, lease_owner=None, lease_expires=None,
                attempts=videos.c.attempts - 1)).rowcount == 1

    # ----- expiry ---------------------------------------------------------------------------
    def expired(self, now: float | None = None) -> list[Row]:
        now = time.time() if now is None else now
        with self.engine.connect() as conn:
            return list(conn.execute(select(videos).where(videos.c.expires_at.is_not(None),
                                                          videos.c.expires_at < now,
                                                          videos.c.purged.is_(False))))

    def mark_purged(self, video_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(videos).where(videos.c.id == video_id).values(purged=True))

    # ----- characters -----------------------------------------------------------------------
    def insert_character(self, row: dict[str, Any]) -> None:
        row = dict(row)
        if not isinstance(row.get("facts"), str):
            row["facts"] = json.dumps(row["facts"])
        with self.engine.begin() as conn:
            conn.execute(insert(characters).values(**row))

    def get_character(self, char_id: str, owner: str) -> Row | None:
        with self.engine.connect() as conn:
            return conn.execute(select(characters).where(characters.c.id == char_id,
                                                         characters.c.owner == owner)).first()

    def characters_of(self, owner: str) -> list[Row]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(characters).where(characters.c.owner == owner)
                                     .order_by(characters.c.seq.desc())))


def loads(text: str | None) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}

