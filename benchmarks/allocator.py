"""What keeping freed memory in the process (`kinema.allocator`) saves: page faults and time.

Three measurements, each in fresh processes that alternate the allocator setting (kept, the default,
then as glibc leaves it with KINEMA_KEEP_FREED_MEMORY=0, and again), so a slow spell of the machine
falls on both:

- `kinema generate` of the default clip, the command a user runs (one clip per process, so the
  allocator has not warmed up): its stage breakdown, whole-process wall time and minor page faults;
- the shipped transformer alone: `--forwards` batch-2 forwards of the default clip's latents in one
  process, after two warm-up forwards; median time and page faults per forward;
- `kinema train dit` on the shipped model's recipe (`--train-config`, in fp32, batch 8, 2 s clips
  at 128x128, `--train-steps` steps; 0 skips it): seconds per step after the first two logged
  steps, page faults and peak resident memory of the whole run.

    python benchmarks/allocator.py [--runs 3] [--forwards 15] [--train-steps 8] [--threads 2]
        [--train-config benchmarks/results/kinema-tiny-v22/train_dit_config_override.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from generate import KINEMA

HERE = Path(__file__).resolve().parent

SETTINGS = {"kept": "1", "glibc default": "0"}


def forward_child(n: int, threads: int) -> None:
    import torch

    from kinema.allocator import keep_freed_memory
    from vs_diffusers import inputs, load_ours

    torch.set_num_threads(threads)
    keep_freed_memory()  # what Pipeline() does; a no-op under KINEMA_KEEP_FREED_MEMORY=0
    model = load_ours()
    x, states, mask = inputs()  # the default clip's latents, batch 2 as with guidance
    t = torch.full((2, x.shape[2]), 0.5)
    times, faults = [], []
    with torch.no_grad():
        for _ in range(2):
            model(x, t, states, mask)
        for _ in range(n):
            f0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
            model(x, t, states, mask)
            times.append(time.perf_counter() - t0)
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    print(json.dumps({"forward_s": statistics.median(times), "faults": statistics.median(faults)}))


def child_env(env_value: str, threads: int) -> dict[str, str]:
    return {**os.environ, "KINEMA_KEEP_FREED_MEMORY": env_value, "OMP_NUM_THREADS": str(threads)}


def run_forwards(env_value: str, n: int, threads: int) -> dict:
    env = child_env(env_value, threads)
    proc = subprocess.run([sys.executable, __file__, "--child-forwards", str(n), "--threads", str(threads)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"forward child failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_generate(env_value: str, threads: int, tmp: Path, i: int) -> dict:
    out, timings = tmp / f"clip_{i}.mp4", tmp / f"clip_{i}.json"
    cmd = [*KINEMA, "generate", "a large red circle moves right on a navy background", "-o", str(out),
           "--quiet", "--timings-json", str(timings), "--seed", "0"]
    env = child_env(env_value, threads)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"kinema generate failed:\n{proc.stderr[-2000:]}")
    res = json.loads(timings.read_text())
    return {**res["stages"], "whole process": wall,
            "faults": resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt - before}


def train_config(recipe: Path, steps: int, path: Path) -> None:
    cfg = json.loads(recipe.read_text())
    cfg.update(precision="fp32", steps=steps, time_limit_s=3600, checkpoint_every=10**6, log_every=2)
    cfg.setdefault("optim", {})["batch_size"] = 8
    cfg.setdefault("data", {}).update(buckets=[[128, 128, 25]], num_workers=0)
    path.write_text(json.dumps(cfg))


def train_child(config: str, out: str) -> None:
    from kinema.cli import main as kinema_main
    from kinema.pipeline import DEFAULT_MODEL_DIR

    code = kinema_main(["train", "dit", "--preset", "tiny", "--vae", str(DEFAULT_MODEL_DIR), "--out", out,
                        "--config", config])
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"code": code, "faults": usage.ru_minflt, "peak_mb": usage.ru_maxrss / 1024}))


def run_train(env_value: str, threads: int, config: Path, out: Path) -> dict:
    env = child_env(env_value, threads)
    # from the repository's root, where the recipe's paths ("init") start
    proc = subprocess.run([sys.executable, __file__, "--child-train", str(config), str(out)],
                          capture_output=True, text=True, env=env, cwd=HERE.parent)
    if proc.returncode != 0:
        sys.exit(f"kinema train failed:\n{proc.stderr[-2000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    if res["code"] != 0:
        sys.exit(f"kinema train exited with {res['code']}:\n{proc.stderr[-2000:]}")
    logged = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    first, last = logged[1], logged[-1]  # the first logged steps include start-up work
    return {"step_s": (last["elapsed"] - first["elapsed"]) / (last["step"] - first["step"]),
            "faults": res["faults"], "peak_mb": res["peak_mb"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3, help="fresh processes per setting and measurement")
    ap.add_argument("--forwards", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train-steps", type=int, default=8)
    ap.add_argument("--train-config", type=Path,
                    default=HERE / "results" / "kinema-tiny-v22" / "train_dit_config_override.json")
    ap.add_argument("--child-forwards", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-train", nargs=2, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_forwards is not None:
        forward_child(args.child_forwards, args.threads)
        return
    if args.child_train is not None:
        train_child(*args.child_train)
        return
    if args.train_steps and args.train_steps < 6:
        sys.exit("--train-steps: at least 6 (steps are logged every 2 and the first two logs are start-up)")

    print(f"allocator benchmark: {args.threads} threads, {args.runs} fresh processes per setting, alternated")
    gen: dict[str, list[dict]] = {k: [] for k in SETTINGS}
    fwd: dict[str, list[dict]] = {k: [] for k in SETTINGS}
    train: dict[str, list[dict]] = {k: [] for k in SETTINGS}
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "train.json"
        train_config(args.train_config, args.train_steps, config)
        for i in range(args.runs):
            for j, (name, value) in enumerate(SETTINGS.items()):
                gen[name].append(run_generate(value, args.threads, Path(tmp), 2 * i + j))
                fwd[name].append(run_forwards(value, args.forwards, args.threads))
                if args.train_steps:
                    train[name].append(run_train(value, args.threads, config, Path(tmp) / f"train_{2 * i + j}"))

    def med(rows: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    names = list(SETTINGS)
    print(f"\nkinema generate, default clip (median of {args.runs})")
    print(f"  {'':<16}" + "".join(f"{n:>16}" for n in names))
    for key in [k for k in gen[names[0]][0] if k not in ("faults", "whole process")] + ["whole process"]:
        print(f"  {key:<16}" + "".join(f"{med(gen[n], key):>14.3f} s" for n in names))
    print(f"  {'page faults':<16}" + "".join(f"{med(gen[n], 'faults'):>16,.0f}" for n in names))
    print(f"\ntransformer forward, batch 2, 448 tokens (median of {args.forwards} forwards; median of {args.runs} processes)")
    print(f"  {'time':<16}" + "".join(f"{med(fwd[n], 'forward_s') * 1e3:>13.1f} ms" for n in names))
    print(f"  {'page faults':<16}" + "".join(f"{med(fwd[n], 'faults'):>16,.0f}" for n in names))
    if args.train_steps:
        print(f"\nkinema train dit, fp32, batch 8, 128x128x25 ({args.train_steps} steps; median of {args.runs} processes)")
        print(f"  {'per step':<16}" + "".join(f"{med(train[n], 'step_s'):>14.2f} s" for n in names))
        print(f"  {'page faults':<16}" + "".join(f"{med(train[n], 'faults'):>16,.0f}" for n in names))
        print(f"  {'peak memory':<16}" + "".join(f"{med(train[n], 'peak_mb'):>13,.0f} MB" for n in names))
    a, b = names
    print(f"\nkept / glibc default: whole process {med(gen[a], 'whole process') / med(gen[b], 'whole process'):.2f}, "
          f"denoise {med(gen[a], 'denoise') / med(gen[b], 'denoise'):.2f}, "
          f"decode {med(gen[a], 'decode') / med(gen[b], 'decode'):.2f}, "
          f"forward {med(fwd[a], 'forward_s') / med(fwd[b], 'forward_s'):.2f}"
          + (f", training step {med(train[a], 'step_s') / med(train[b], 'step_s'):.2f}" if args.train_steps else ""))


if __name__ == "__main__":
    main()
