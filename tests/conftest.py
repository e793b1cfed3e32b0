"""Shared fixtures. Server fixtures (prefixed server_) start `kinema serve` as a subprocess on a free
loopback port, with a tiny random pipeline saved to a temp folder and passed as --model."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_script(relative_path: str):
    """A repository script that is not part of the package (benchmarks/, scripts/), as a module."""
    path = ROOT / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the script runs
    spec.loader.exec_module(module)
    return module


SERVER_KEY_A = "sk-test-alpha-0001"
SERVER_KEY_B = "sk-test-bravo-0002"      # max_jobs=1: for the 429 test
SERVER_KEY_C = "sk-test-charlie-0003"    # a clean slate for list paging
SERVER_KEY_D = "sk-test-delta-0004"      # 20 concurrent jobs
SERVER_KEY_ENV = "sk-test-env-0005"      # given through KINEMA_API_KEYS
SERVER_KEY_WEB = "sk-test-web-0006"      # the browser test


def server_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A `kinema serve` or `kinema worker` subprocess; its output goes to a log file."""

    def __init__(self, args: list[str], log: Path, env: dict | None = None, port: int | None = None):
        self.args = args
        self.log_path = log
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}" if port else None
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        full_env.setdefault("OMP_NUM_THREADS", "2")
        self._log = open(log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "kinema.cli", *args], stdout=self._log,
                                     stderr=subprocess.STDOUT, env=full_env)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_ready(self, timeout: float = 120.0) -> "ServerProcess":
        import httpx

        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.base_url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {timeout} s:\n{self.log()}")

    def wait_log(self, text: str, timeout: float = 120.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.log():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"process exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.2)
        raise RuntimeError(f"{text!r} not logged after {timeout} s:\n{self.log()}")

    def stop(self, sig=signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()


@pytest.fixture(scope="session")
def server_model_dir(tmp_path_factory) -> Path:
    """A tiny random pipeline (64x64, 8 fps, 2 steps by default), saved like a real model."""
    from kinema.models.dit import DiTConfig
    from kinema.models.vae import VAEConfig
    from kinema.pipeline import Pipeline

    path = tmp_path_factory.mktemp("server-model") / "kinema-test-tiny"
    pipe = Pipeline.from_configs(VAEConfig(base_channels=8), DiTConfig(hidden_size=32, depth=2, num_heads=2),
                                 steps=2, size="64x64", fps=8.0, guidance=2.0)
    pipe.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def server_launch(server_model_dir, tmp_path_factory):
    """start(extra_args, data=None, command='serve') -> ServerProcess (stopped at the end of the session)."""
    started: list[ServerProcess] = []

    def start(extra: list[str] | None = None, data: Path | None = None, command: str = "serve",
              env: dict | None = None, ready: bool = True) -> ServerProcess:
        data = data or tmp_path_factory.mktemp("server-data")
        args = [command, "--data", str(data), "--model", str(server_model_dir)]
        port = None
        if command == "serve":
            port = server_free_port()
            args += ["--port", str(port), "--scale", "64", "--fps", "8", "--openai-seconds-scale", "0.125",
                     "--poll-after-ms", "100"]
        args += list(extra or [])
        log = tmp_path_factory.mktemp("server-log") / f"{command}.log"
        proc = ServerProcess(args, log, env=env, port=port)
        proc.data = data
        started.append(proc)
        if ready and command == "serve":
            proc.wait_ready()
        return proc

    yield start
    for proc in started:
        if proc.proc.poll() is None:
            proc.stop(timeout=15)


@pytest.fixture(scope="session")
def server_live(server_launch, tmp_path_factory):
    """One live server for the API and web page tests, with several keys."""
    keys = tmp_path_factory.mktemp("server-keys") / "keys.txt"
    keys.write_text(
        "# test keys\n"
        f"{SERVER_KEY_A} name=alpha max_jobs=10\n"
        f"{SERVER_KEY_B} name=bravo max_jobs=1\n"
        f"{SERVER_KEY_C} name=charlie\n"
        f"{SERVER_KEY_D} name=delta max_jobs=25\n"
        f"{SERVER_KEY_WEB} name=web\n"
    )
    return server_launch(["--keys-file", str(keys), "--max-upload-mb", "1", "--max-prompt-chars", "3000",
                          "--max-active-jobs", "4"],
                         env={"KINEMA_API_KEYS": SERVER_KEY_ENV})


@pytest.fixture(scope="session")
def server_client_factory(server_live):
    def make(key: str = SERVER_KEY_A, max_retries: int = 0):
        from openai import OpenAI

        return OpenAI(base_url=server_live.base_url + "/v1", api_key=key, max_retries=max_retries, timeout=60)

    return make
