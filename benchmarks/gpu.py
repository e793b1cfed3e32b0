"""GPU figures (DESIGN §5) on one CUDA device, in one run: the matmul peak, our transformer against
diffusers' WanTransformer3DModel of the same size (as benchmarks/vs_diffusers.py, on the GPU), and
the default clip's latency with a real pipeline.

- peak: 8192^3 matmuls in float32 (TF32 off), TF32 and bfloat16, the best of `--runs`.
- ours vs diffusers: one forward at batch 2 (classifier-free guidance) and the whole 20-step Euler
  loop, interleaved (ours, theirs, ours, ...), CUDA-synchronised, medians; float32 and bf16
  autocast; at the default clip's latents [8, 7, 16, 16] (448 tokens a sample) and at a larger
  clip's [8, 13, 32, 32] (about 4 s of 256x256: 3,328 tokens a sample), where the GPU is busy
  rather than waiting on kernel launches. Peak GPU memory of each loop (torch.cuda max allocated).
- clip latency: `Pipeline.generate` of the default clip (2 s, 128x128, 20 steps) from the prompt
  to uint8 frames in host memory, medians over `--clip-runs` after two warm-ups. Writing the MP4
  is CPU work and is measured by benchmarks/generate.py.

    python benchmarks/gpu.py [--model DIR] [--runs 20] [--loop-runs 5] [--clip-runs 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from vs_diffusers import LATENTS, TEXT_DIM, TEXT_LEN, build_theirs, count_flops, euler_loop, load_ours  # noqa: E402
from vs_diffusers import interleaved as interleaved_host  # noqa: E402

LARGE = (8, 13, 32, 32)
PROMPT = "a large red circle moves right on a navy background"


def synced(fn):
    def g():
        out = fn()
        torch.cuda.synchronize()
        return out
    return g


def interleaved(fns: dict, runs: int, warmup: int = 3) -> dict[str, list[float]]:
    """vs_diffusers' interleaved timing, each call waiting for the GPU to finish."""
    return interleaved_host({k: synced(f) for k, f in fns.items()}, runs, warmup)


def matmul_peak(dtype: torch.dtype, tf32: bool, n: int = 8192, runs: int = 10) -> float:
    """Best TFLOP/s of an n^3 matmul."""
    torch.backends.cuda.matmul.allow_tf32 = tf32
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    b = torch.randn(n, n, device="cuda", dtype=dtype)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        a @ b
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    torch.backends.cuda.matmul.allow_tf32 = False
    return 2 * n**3 / best / 1e12


def inputs(latents: tuple[int, ...], batch: int = 2):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *latents, generator=g).cuda()
    states = torch.randn(batch, TEXT_LEN, TEXT_DIM, generator=g).cuda()
    mask = torch.ones(batch, TEXT_LEN, dtype=torch.bool, device="cuda")
    return x, states, mask


def velocity_fns(ours, theirs, states, mask, amp: bool):
    def f_ours(x, t):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            return ours(x, torch.full((x.shape[0], x.shape[2]), t, device="cuda"), states, mask).float()

    def f_wan(x, t):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            return theirs(x, torch.full((x.shape[0],), t * 1000.0, device="cuda"), states, return_dict=False)[0].float()

    return f_ours, f_wan


def loop_memory(fn, noise, steps: int) -> float:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    euler_loop(fn, noise, steps)
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def compare(say, ours, theirs, latents, runs: int, loop_runs: int, steps: int, peaks: dict) -> None:
    x, states, mask = inputs(latents)
    T, H, W = latents[1:]
    flops = ours.flops_per_forward(T, H, W, TEXT_LEN, batch=2)
    tokens = T * (H // 2) * (W // 2)
    noise = torch.randn(1, *latents, generator=torch.Generator().manual_seed(1)).cuda()
    say(f"\nlatents [2, {', '.join(map(str, latents))}] ({tokens} tokens a sample), text {TEXT_LEN} x {TEXT_DIM}; "
        f"ours {flops / 1e9:.1f} GFLOP a batch-2 forward (analytic)")
    for amp in (False, True):
        label = "bf16 autocast" if amp else "float32 (TF32 off)"
        peak = peaks["bf16"] if amp else peaks["fp32"]
        f_ours, f_wan = velocity_fns(ours, theirs, states, mask, amp)
        with torch.no_grad():
            if not amp:
                wan_flops = count_flops(lambda: f_wan(x, 0.5))
            tf = interleaved({"ours": lambda: f_ours(x, 0.5), "diffusers": lambda: f_wan(x, 0.5)}, runs)
            tl = interleaved({"ours": lambda: euler_loop(f_ours, noise, steps),
                              "diffusers": lambda: euler_loop(f_wan, noise, steps)}, loop_runs, warmup=1)
            mem = {"ours": loop_memory(f_ours, noise, steps), "diffusers": loop_memory(f_wan, noise, steps)}
        fo, fw = statistics.median(tf["ours"]), statistics.median(tf["diffusers"])
        lo, lw = statistics.median(tl["ours"]), statistics.median(tl["diffusers"])
        say(f"  {label}")
        say(f"    one forward (batch 2), {runs} runs: ours {fo * 1e3:7.2f} ms, diffusers {fw * 1e3:7.2f} ms, "
            f"ours/diffusers {fo / fw:.2f}")
        say(f"    {steps}-step loop, {loop_runs} runs:   ours {lo * 1e3:7.1f} ms, diffusers {lw * 1e3:7.1f} ms, "
            f"ours/diffusers {lo / lw:.2f}")
        say(f"    ours {flops * steps / lo / 1e12:.2f} TFLOP/s in the loop = {flops * steps / lo / 1e12 / peak * 100:.1f}% "
            f"of the measured {'bf16' if amp else 'fp32'} peak; diffusers {wan_flops * steps / lw / 1e12:.2f} TFLOP/s (counted)")
        say(f"    loop's GPU memory above the weights: ours {mem['ours']:.1f} MiB, diffusers {mem['diffusers']:.1f} MiB")


def clip_latency(say, model: str | None, runs: int) -> None:
    from kinema.pipeline import Pipeline

    t = time.perf_counter()
    pipe = Pipeline.from_pretrained(model, device="cuda")
    torch.cuda.synchronize()
    load = time.perf_counter() - t
    for seed in range(2):
        pipe.generate(PROMPT, seed=seed, progress=False)
    totals, stages = [], []
    for seed in range(runs):
        torch.cuda.synchronize()
        t = time.perf_counter()
        video = pipe.generate(PROMPT, seed=100 + seed, progress=False)
        totals.append(time.perf_counter() - t)
        stages.append(dict(pipe.last_timings))
    med = statistics.median(totals)
    clip_s = video.num_frames / video.fps
    say(f"\ndefault clip on the GPU ({model or 'shipped kinema-tiny'}: {video.width}x{video.height}, "
        f"{video.num_frames} frames, {pipe.config['steps']} steps), prompt to uint8 frames in host memory, {runs} runs")
    say(f"  load {load:.2f} s; latency median {med * 1e3:.0f} ms (min {min(totals) * 1e3:.0f}, max {max(totals) * 1e3:.0f}) "
        f"for a {clip_s:.2f} s clip: {clip_s / med:.1f}x faster than real time")
    keys = [k for k in stages[0] if k != "total"]
    say("  stages (medians; CUDA work is asynchronous, so a stage's time can include the one before): "
        + ", ".join(f"{k} {statistics.median(s[k] for s in stages) * 1e3:.0f} ms" for k in keys))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="pipeline folder for the clip latency (default: the shipped model)")
    ap.add_argument("--runs", type=int, default=20, help="interleaved runs of the single forward")
    ap.add_argument("--loop-runs", type=int, default=5)
    ap.add_argument("--clip-runs", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--no-clip", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu.py needs a CUDA device; the CPU figures are benchmarks/vs_diffusers.py")
    lines: list[str] = []

    def say(s: str = "") -> None:
        print(s, flush=True)
        lines.append(s)

    import diffusers

    props = torch.cuda.get_device_properties(0)
    say(f"gpu: {props.name}, {props.multi_processor_count} SMs, {props.total_memory / 2**30:.0f} GiB; "
        f"torch {torch.__version__}, CUDA {torch.version.cuda}, diffusers {diffusers.__version__}")
    say(f"command: python benchmarks/gpu.py {' '.join(sys.argv[1:])}".rstrip())
    peaks = {"fp32": matmul_peak(torch.float32, tf32=False), "tf32": matmul_peak(torch.float32, tf32=True),
             "bf16": matmul_peak(torch.bfloat16, tf32=False)}
    say("measured matmul peak (8192^3): " + ", ".join(f"{k} {v:.0f} TFLOP/s" for k, v in peaks.items()))

    ours = load_ours().cuda()
    theirs = build_theirs().cuda()
    say(f"ours: VideoDiT (shipped kinema-tiny weights), {ours.num_params() / 1e6:.2f} M parameters; theirs: diffusers "
        f"WanTransformer3DModel, same width/depth/heads/patch, random weights, "
        f"{sum(p.numel() for p in theirs.parameters()) / 1e6:.2f} M parameters")
    for latents in (LATENTS, LARGE):
        compare(say, ours, theirs, latents, args.runs, args.loop_runs, args.steps, peaks)
    del ours, theirs
    torch.cuda.empty_cache()
    if not args.no_clip:
        clip_latency(say, args.model, args.clip_runs)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
