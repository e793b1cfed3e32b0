"""`kinema train` under `torchrun --nproc_per_node 2` on the CPU (gloo): DDP and FSDP."""

from __future__ import annotations

import json
import os
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


def _torchrun(args: list[str]) -> subprocess.CompletedProcess:
    torchrun = Path(sys.executable).with_name("torchrun")
    launcher = [str(torchrun)] if torchrun.exists() else [sys.executable, "-m", "torch.distributed.run"]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    env.pop("KINEMA_TRAIN_DIE_AFTER_CHECKPOINT", None)
    cmd = launcher + ["--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
                      "-m", "kinema.cli", "train"] + args
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
