"""A graceful stop of training: SIGTERM or SIGINT finishes the step, checkpoints, exits 0, and
`--resume` continues from there."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kinema.cli import main
from kinema.train.stop import StopRequest

ROOT = Path(__file__).resolve().parents[1]


def _logged_steps(out: Path) -> list[int]:
    """Steps in metrics.jsonl so far; a line still being written is skipped."""
    path = out / "metrics.jsonl"
    if not path.exists():
        return []
    lines = path.read_text().split("\n")[:-1]  # the part after the last newline may be incomplete
    return [r["step"] for r in map(json.loads, lines) if "event" not in r]


def test_stop_request_catches_the_first_signal_and_restores_handlers():
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    heard = []
    with StopRequest(heard.append) as stop:
        assert stop.requested is None
        os.kill(os.getpid(), signal.SIGTERM)  # would end the process without the handler
        assert stop.requested == "SIGTERM" and heard == ["SIGTERM"]
        os.kill(os.getpid(), signal.SIGTERM)  # a second SIGTERM changes nothing
        assert stop.requested == "SIGTERM" and heard == ["SIGTERM"]
        with pytest.raises(KeyboardInterrupt):  # Ctrl-C after a stop request interrupts at once
            os.kill(os.getpid(), signal.SIGINT)
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_sigterm_stops_training_with_a_checkpoint_and_resume_continues(tmp_path):
    vae = tmp_path / "vae"
    assert main(["train", "vae", "--preset", "smoke", "--out", str(vae), "--quiet"]) == 0
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"steps": 100000, "checkpoint_every": 100000, "log_every": 1}))
    out = tmp_path / "dit"
    args = ["train", "dit", "--preset", "smoke", "--config", str(config), "--vae", str(vae / "final"),
            "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "kinema.cli", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300
        while not _logged_steps(out):
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, "no training step logged in 300 s"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    result = json.loads(stdout.strip().splitlines()[-1])
    stopped_at = result["step"]
    assert result["stopped_by"] == "SIGTERM" and 1 <= stopped_at < 100000
    assert f"stopped by SIGTERM at step {stopped_at}" in stderr and "--resume" in stderr
    checkpoints = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert checkpoints == [f"step_{stopped_at:08d}"]  # written for the stop (checkpoint_every is far off)
    assert (out / "final" / "transformer").is_dir()
    assert _logged_steps(out) == list(range(1, stopped_at + 1))
    done = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert done["event"] == "done" and done["stopped_by"] == "SIGTERM"

    config.write_text(json.dumps({"steps": stopped_at + 2, "checkpoint_every": 100000, "log_every": 1}))
    assert main(args + ["--resume", "--quiet"]) == 0
    assert _logged_steps(out) == list(range(1, stopped_at + 3))
    assert sorted(p.name for p in (out / "checkpoints").iterdir())[-1] == f"step_{stopped_at + 2:08d}"
