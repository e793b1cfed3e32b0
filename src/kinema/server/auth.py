"""API keys and per-key limits.

Keys come from the environment variable ``KINEMA_API_KEYS`` (comma-separated) and/or a keys file
(``--keys-file``): one key per line, optionally followed by ``name=NAME`` and ``max_jobs=N`` (the
most queued + running jobs that key may have at once); blank lines and ``#`` comments are skipped::

    sk-studio-a-7f3c   name=studio-a  max_jobs=8
    sk-intern-21aa     max_jobs=1

Clients send ``Authorization: Bearer KEY`` (what the ``openai`` client does with ``api_key=KEY``).
Every key sees only its own videos and characters: rows are stored under the key's *owner*, a
SHA-256 digest of the key, so the database never holds the keys themselves.

With no keys configured the server is open, so it may only listen on a loopback address; every
request then belongs to the one owner ``local`` (whatever key the client sends).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import KinemaError

ENV_VAR = "KINEMA_API_KEYS"
LOCAL_OWNER = "local"


@dataclass(frozen=True)
class Principal:
    owner: str           # what rows are stored under
    name: str            # for logs and the web page; never the key
    max_jobs: int | None  # None: the server's default limit


def owner_for(key: str) -> str:
    return "key_" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]


class KeyRing:
    """The configured keys, looked up by the digest of what a client presents."""

    def __init__(self, entries: dict[str, Principal] | None = None):
        self._by_digest: dict[str, Principal] = {}
        for key, principal in (entries or {}).items():
            self._by_digest[hashlib.sha256(key.encode("utf-8")).hexdigest()] = principal

    @property
    def enabled(self) -> bool:
        return bool(self._by_digest)

    def __len__(self) -> int:
        return len(self._by_digest)

    def lookup(self, key: str | None) -> Principal | None:
        if not self.enabled:
            return Principal(owner=LOCAL_OWNER, name=LOCAL_OWNER, max_jobs=None)
        if not key:
            return None
        return self._by_digest.get(hashlib.sha256(key.encode("utf-8")).hexdigest())

    @classmethod
    def load(cls, env_value: str | None = None, keys_file: str | os.PathLike | None = None) -> "KeyRing":
        if env_value is None:
            env_value = os.environ.get(ENV_VAR, "")
        entries: dict[str, Principal] = {}
        for i, key in enumerate(k.strip() for k in env_value.split(",")):
            if key:
                entries[key] = Principal(owner_for(key), f"env-key-{i + 1}", None)
        if keys_file is not None:
            path = Path(keys_file)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise KinemaError(f"cannot read keys file {path}: {exc.strerror or exc}") from None
            for lineno, line in enumerate(text.splitlines(), 1):
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                key, *opts = line.split()
                name, max_jobs = f"key-{lineno}", None
                for opt in opts:
                    field, sep, value = opt.partition("=")
                    if field == "name" and sep and value:
                        name = value
                    elif field == "max_jobs" and sep:
                        try:
                            max_jobs = int(value)
                        except ValueError:
                            max_jobs = -1
                        if max_jobs < 0:
                            raise KinemaError(f"{path}:{lineno}: max_jobs must be a whole number >= 0, got {value!r}")
                    else:
                        raise KinemaError(f"{path}:{lineno}: unknown option {opt!r} (use name=NAME and max_jobs=N)")
                entries[key] = Principal(owner_for(key), name, max_jobs)
            if not entries:
                raise KinemaError(f"keys file {path} holds no keys")
        return cls(entries)


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
