"""`kinema train` under `torchrun --nproc_per_node 2` on the CPU (gloo): DDP and FSDP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun_command(args: list[str]) -> tuple[list[str], dict]:
    """`kinema train ARGS` under torchrun with two processes, and its environment."""
    torchrun = Path(sys.executable).with_name("torchrun")
    launcher = [str(torchrun)] if torchrun.exists() else [sys.executable, "-m", "torch.distributed.run"]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    env.pop("KINEMA_TRAIN_DIE_AFTER_CHECKPOINT", None)
    cmd = launcher + ["--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
                      "-m", "kinema.cli", "train"] + args
    return cmd, env


def _torchrun(args: list[str]) -> subprocess.CompletedProcess:
    cmd, env = _torchrun_command(args)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def _records(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_two_process_ddp_and_fsdp_agree(tmp_path):
    ddp, fsdp = tmp_path / "ddp", tmp_path / "fsdp"
    p = _torchrun(["vae", "--preset", "smoke", "--out", str(ddp), "--steps", "3", "--quiet"])
    assert p.returncode == 0, p.stderr[-3000:]
    assert (ddp / "checkpoints" / "step_00000003" / "model.safetensors").is_file()
    assert (ddp / "final" / "config.json").is_file()
    done = [r for r in _records(ddp) if r.get("event") == "done"][0]
    a, b = done["param_checksums"]
    assert a == pytest.approx(b, rel=1e-9)  # every rank holds the same weights after the steps
    assert {f.name for f in (ddp / "checkpoints" / "step_00000003").glob("rng_rank*.safetensors")} == {
        "rng_rank0.safetensors", "rng_rank1.safetensors"}

    cfg = tmp_path / "fsdp.json"
    cfg.write_text(json.dumps({"parallel": "fsdp"}))
    p = _torchrun(["vae", "--preset", "smoke", "--config", str(cfg), "--out", str(fsdp), "--steps", "3", "--quiet"])
    assert p.returncode == 0, p.stderr[-3000:]
    la = [r["loss"] for r in _records(ddp) if "event" not in r]
    lb = [r["loss"] for r in _records(fsdp) if "event" not in r]
    assert la == pytest.approx(lb, rel=1e-4)
    wa = load_file(str(ddp / "checkpoints" / "step_00000003" / "model.safetensors"))
    wb = load_file(str(fsdp / "checkpoints" / "step_00000003" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    assert all((wa[k] - wb[k]).abs().max() < 1e-4 for k in wa)


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _local_rank(pid: int) -> int | None:
    for item in (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0"):
        if item.startswith(b"LOCAL_RANK="):
            return int(item.split(b"=", 1)[1])
    return None


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the worker processes through /proc")
def test_sigterm_to_one_process_stops_both_at_the_same_step(tmp_path):
    # only rank 1 hears the signal: rank 0 must learn of it and stop at the same step
    import time

    out = tmp_path / "run"
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"steps": 100000, "checkpoint_every": 100000, "log_every": 1}))
    cmd, env = _torchrun_command(["vae", "--preset", "smoke", "--config", str(cfg), "--out", str(out)])
    proc = subprocess.Popen(cmd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300
        while not (out / "metrics.jsonl").exists() or "\n" not in (out / "metrics.jsonl").read_text():
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, "no training step logged in 300 s"
            time.sleep(0.1)
        rank1 = [pid for pid in _children(proc.pid) if _local_rank(pid) == 1]
        assert len(rank1) == 1
        os.kill(rank1[0], signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    done = [r for r in _records(out) if r.get("event") == "done"]
    assert len(done) == 1 and done[0]["stopped_by"] == "a signal to another process"  # rank 0's view
    a, b = done[0]["param_checksums"]
    assert a == pytest.approx(b, rel=1e-9)
    step = done[0]["step"]
    assert [p.name for p in (out / "checkpoints").iterdir()] == [f"step_{step:08d}"]
    assert {f.name for f in (out / "checkpoints" / f"step_{step:08d}").glob("rng_rank*.safetensors")} == {
        "rng_rank0.safetensors", "rng_rank1.safetensors"}
