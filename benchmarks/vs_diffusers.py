"""Our transformer against the same-size transformer from `diffusers`, side by side (DESIGN §5).

Ours: VideoDiT with the shipped kinema-tiny weights. Theirs: diffusers' WanTransformer3DModel, its
closest video transformer, built with the same width (256), depth (8), heads (4), patch (1,2,2),
latent channels (8), text length and dimension (32 x 384), random weights, float32. Both see the
same latents [2, 8, 7, 16, 16] (the default 2 s 128x128 clip, doubled for classifier-free
guidance: 448 tokens per sample).

Printed, in one run:
- parameters and FLOPs per forward of both (analytic for ours, and counted by
  torch.utils.flop_counter for both);
- the machine's measured float32 / bfloat16 matmul peak (benchmarks/_machine.py);
- one forward at batch 2, and a whole 20-step Euler sampling loop with guidance (the same simple
  loop for both), timed interleaved (ours, ours before the speed work, theirs, ours, ...): medians
  and the spread; our time / theirs;
- the fraction of the float32 peak our denoising reaches (analytic FLOPs / measured time);
- peak memory of each sampling loop, in a fresh subprocess per model: the growth of the resident
  set (VmHWM, reset through /proc/self/clear_refs) above the resident set just before the loop;
- the real-time factor of the default clip, by benchmarks/generate.py (fresh processes).

"Ours before" is the same model with the inference fast path off (KINEMA_DIT_FAST=0), i.e. the
code as it was before the speed work; the outputs of the two agree to float rounding (printed).

`--dtype bfloat16` runs every model under CPU bf16 autocast (what `denoise_precision` "bf16" does
in the pipeline; "auto" picks it on a CPU with AMX), and adds diffusers' Wan with its weights cast
to bf16 (`.to(torch.bfloat16)`, as WanPipeline is usually loaded); the ratio is against the faster
of the two. Its efficiency is given against both measured peaks.

    python benchmarks/vs_diffusers.py [--threads N] [--runs 9] [--loop-runs 5] [--steps 20]
        [--generate-runs 3] [--no-generate] [--compile] [--latents T,H,W] [--dtype float32|bfloat16]
        [--out benchmarks/results/cpu_vs_diffusers.txt]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _machine import format_peaks, load_average, machine_line, peak_table  # noqa: E402

LATENTS = (8, 7, 16, 16)  # [C, t, h, w] of the default clip: 2 s, 128x128, 12 fps -> 1+4*6 frames
TEXT_LEN, TEXT_DIM = 32, 384
WAN_KW = dict(patch_size=(1, 2, 2), num_attention_heads=4, attention_head_dim=64, in_channels=8,
              out_channels=8, text_dim=TEXT_DIM, freq_dim=256, ffn_dim=1024, num_layers=8,
              cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6)
BF16 = False  # --dtype bfloat16: every model call under CPU bf16 autocast


# ----- models and inputs ----------------------------------------------------------------------------


def load_ours():
    from kinema.models.dit import DiTConfig, VideoDiT
    from kinema.pipeline import DEFAULT_MODEL_DIR, _load_component

    return _load_component(DEFAULT_MODEL_DIR, "transformer", DiTConfig, VideoDiT).eval()


def build_theirs():
    from diffusers import WanTransformer3DModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return WanTransformer3DModel(**WAN_KW).float().eval()


def to_bf16_like_diffusers(model):
    """bf16 weights, except the modules the model keeps in float32 (`_keep_in_fp32_modules`, e.g.
    Wan's norms and time embedder), as `from_pretrained(torch_dtype=torch.bfloat16)` loads it."""
    keep = set(getattr(model, "_keep_in_fp32_modules", None) or ())
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.data = p.data.to(torch.float32 if keep & set(name.split(".")) else torch.bfloat16)
        for name, b in model.named_buffers():
            if b.is_floating_point() and not keep & set(name.split(".")):
                b.data = b.data.to(torch.bfloat16)
    return model


def inputs(batch: int = 2):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *LATENTS, generator=g)
    states = torch.randn(batch, TEXT_LEN, TEXT_DIM, generator=g)
    mask = torch.ones(batch, TEXT_LEN, dtype=torch.bool)
    return x, states, mask


def fast_path(on: bool) -> None:
    import kinema.models.dit as dit

    dit.FAST_INFERENCE = on


def autocast():
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=BF16)


def ours_fn(model, fast: bool, states, mask):
    """velocity(x [B, ...], t float) with our model; our timesteps are per latent frame, in [0, 1]."""

    def f(x, t):
        fast_path(fast)
        with autocast():
            return model(x, torch.full((x.shape[0], x.shape[2]), t), states, mask)

    return f


def theirs_fn(model, states):
    """The same with diffusers' Wan: one timestep per sample, in [0, 1000] (as WanPipeline); a
    model whose weights are bf16 gets bf16 inputs."""
    dtype = next(model.parameters()).dtype

    def f(x, t):
        with autocast():
            return model(x.to(dtype), torch.full((x.shape[0],), t * 1000.0), states.to(dtype), return_dict=False)[0]

    return f


def euler_loop(velocity, noise, steps: int, guidance: float = 5.0):
    """The same simple sampler for both: Euler from t=1 to 0, cond and uncond in one batch of 2."""
    x = noise
    ts = torch.linspace(1.0, 0.0, steps + 1).tolist()
    for i in range(steps):
        v_c, v_u = velocity(torch.cat([x, x]), ts[i]).chunk(2)
        x = x + (ts[i + 1] - ts[i]) * (v_u + guidance * (v_c - v_u))
    return x


# ----- memory child ---------------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def memory_child(which: str, steps: int, threads: int) -> None:
    torch.set_num_threads(threads)
    x, states, mask = inputs(2)
    with torch.no_grad():
        if which in ("theirs", "theirs-bf16"):
            model = build_theirs()
            if which == "theirs-bf16":
                model = to_bf16_like_diffusers(model)
            f = theirs_fn(model, states)
        else:
            model = load_ours()
            f = ours_fn(model, which == "ours", states, mask)
        rss0 = _status_kb("VmRSS")
        hwm_load = _status_kb("VmHWM")
        try:  # reset the peak resident set (VmHWM) to the current one (Linux >= 4.0)
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            reset = True
        except OSError:
            reset = False
        euler_loop(f, x[:1], steps)
        hwm = _status_kb("VmHWM")
    print(json.dumps({"rss_before_mb": rss0 / 1024, "loop_peak_mb": hwm / 1024, "growth_mb": (hwm - rss0) / 1024,
                      "hwm_reset": reset, "process_peak_mb": max(hwm, hwm_load) / 1024,
                      "params_mb": sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20}))


def run_memory(which: str, steps: int, threads: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--_memory-child", which, "--steps", str(steps),
                           "--threads", str(threads), "--latents", ",".join(map(str, LATENTS[1:])),
                           "--dtype", "bfloat16" if BF16 else "float32"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"memory child {which} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----- timing -----------------------------------------------------------------------------------------


def interleaved(fns: dict, runs: int, warmup: int = 2) -> dict[str, list[float]]:
    """Time each callable `runs` times, in turn (A B C A B C ...), after `warmup` calls of each."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    times = {k: [] for k in fns}
    for _ in range(runs):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return times


def spread(ts: list[float]) -> str:
    med = statistics.median(ts)
    return f"median {med:8.4f} s  (min {min(ts):.4f}, max {max(ts):.4f}, spread ±{(max(ts) - min(ts)) / 2 / med * 100:4.1f}%)"


def paired_ratios(times: dict[str, list[float]], ours: str, theirs: str) -> str:
    """Our time over theirs round by round (the two ran next to each other in each round), so a slow
    spell of the machine falls on both: the median and the range over the rounds."""
    r = sorted(a / b for a, b in zip(times[ours], times[theirs]))
    return f"round by round: median {statistics.median(r):.2f}, range {r[0]:.2f}-{r[-1]:.2f} over {len(r)} rounds"


def count_flops(fn) -> int:
    """Matmul FLOPs counted by torch.utils.flop_counter; attention through the math SDPA backend,
    whose matmuls the counter sees (it does not count the fused CPU flash-attention kernel)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
        fn()
    return int(fc.get_total_flops())


def _sample_in(ctx, sample, *args, **kw):
    with ctx:
        return sample(*args, **kw)


# ----- main -------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    ap.add_argument("--runs", type=int, default=9, help="interleaved runs of the single forward")
    ap.add_argument("--loop-runs", type=int, default=5, help="interleaved runs of the sampling loop")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--generate-runs", type=int, default=3)
    ap.add_argument("--no-generate", action="store_true", help="skip the real-time factor (benchmarks/generate.py)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile'd models (reports compile time)")
    ap.add_argument("--latents", default=None, metavar="T,H,W",
                    help="latent frames, height, width (default 7,16,16: the default clip; 13,32,32 is 4 s of 256x256)")
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                    help="bfloat16: every model under CPU bf16 autocast, and diffusers also with bf16 weights")
    ap.add_argument("--out", default=None, help="also write the printed report to this file")
    ap.add_argument("--_memory-child", dest="memory_child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    global BF16
    BF16 = args.dtype == "bfloat16"
    if args.latents:
        global LATENTS
        try:
            t, h, w = (int(v) for v in args.latents.split(","))
        except ValueError:
            raise SystemExit(f"--latents {args.latents!r}: expected three whole numbers T,H,W") from None
        if min(t, h, w) < 1 or h % 2 or w % 2:
            raise SystemExit(f"--latents {args.latents!r}: T, H, W must be positive, H and W even (patch 2x2)")
        LATENTS = (LATENTS[0], t, h, w)
    threads = args.threads or torch.get_num_threads()
    if args.memory_child:
        memory_child(args.memory_child, args.steps, threads)
        return
    torch.set_num_threads(threads)

    lines: list[str] = []

    def say(s: str = "") -> None:
        print(s, flush=True)
        lines.append(s)

    t_start = time.perf_counter()
    generate_out = []
    if not args.no_generate:  # first, while this process is small (a child's ru_maxrss starts at its parent's)
        for label, extra in (("ours", {}), ("ours before (KINEMA_DIT_FAST=0)", {"KINEMA_DIT_FAST": "0"})):
            # the shipped model's denoise_precision ("auto") decides the dtype there, not --dtype
            env = dict(os.environ, OMP_NUM_THREADS=str(threads), **extra)
            proc = subprocess.run([sys.executable, str(HERE / "generate.py"), "--runs", str(args.generate_runs)],
                                  capture_output=True, text=True, env=env)
            generate_out.append((label, proc))

    import diffusers

    say(f"vs_diffusers: kinema VideoDiT (shipped kinema-tiny) vs diffusers {diffusers.__version__} WanTransformer3DModel")
    say(f"machine: {machine_line()}")
    say(f"command: python benchmarks/vs_diffusers.py {' '.join(sys.argv[1:])}".rstrip())
    say(f"latents [2, {', '.join(map(str, LATENTS))}] (batch 2 = classifier-free guidance), text {TEXT_LEN} x {TEXT_DIM}, "
        f"{args.dtype}{' (CPU autocast)' if BF16 else ''}, {threads} threads, {args.steps} Euler steps")

    ours, theirs = load_ours(), build_theirs()
    x, states, mask = inputs(2)
    T, H, W = LATENTS[1:]
    cfg = ours.config
    flops_ours = ours.flops_per_forward(T, H, W, TEXT_LEN, batch=2)
    f_fast, f_ref, f_wan = ours_fn(ours, True, states, mask), ours_fn(ours, False, states, mask), theirs_fn(theirs, states)
    if BF16:
        import copy

        theirs16 = to_bf16_like_diffusers(copy.deepcopy(theirs))
        f_wan16 = theirs_fn(theirs16, states)
    with torch.no_grad():
        counted_ours = count_flops(lambda: f_ref(x, 0.5))  # reference path: plain aten matmuls the counter sees
        counted_wan = count_flops(lambda: f_wan(x, 0.5))
        a, b = f_fast(x, 0.5).float(), f_ref(x, 0.5).float()
        diff = (a - b).abs().max().item()
        rel = ((a - b).pow(2).mean() / b.pow(2).mean()).sqrt().item()
    fast_path(True)
    say()
    say("models")
    say(f"  ours    VideoDiT hidden {cfg.hidden_size}, depth {cfg.depth}, heads {cfg.num_heads}, patch {tuple(cfg.patch_size)}, "
        f"mlp x{cfg.mlp_ratio:g}: {ours.num_params() / 1e6:.2f} M parameters")
    say(f"  theirs  Wan inner dim {WAN_KW['num_attention_heads'] * WAN_KW['attention_head_dim']}, {WAN_KW['num_layers']} layers, "
        f"{WAN_KW['num_attention_heads']} heads, patch {WAN_KW['patch_size']}, ffn {WAN_KW['ffn_dim']}: "
        f"{sum(p.numel() for p in theirs.parameters()) / 1e6:.2f} M parameters")
    say("          (the designs differ: ours has a per-block adaLN linear (3.2 M) and a pooled-text MLP; Wan shares one")
    say("          time projection across blocks and adds a learned per-block table; the per-token work is the same)")
    say(f"  FLOPs per forward at batch 2: ours {flops_ours / 1e9:.2f} G analytic (flops_per_forward), "
        f"{counted_ours / 1e9:.2f} G counted by torch.utils.flop_counter; theirs {counted_wan / 1e9:.2f} G counted")
    say("          (counted = matmuls and attention; the analytic count also leaves out norms, activations, rotary)")
    say(f"  ours fast path vs ours before (reference path), same weights and inputs: max |diff| {diff:.2e}, "
        f"relative RMS {rel:.1e}" + (" (both bf16, rounded differently)" if BF16 else ""))

    say()
    say(f"measured matmul peak ({threads} threads)")
    peaks = peak_table(runs=7)
    for line in format_peaks(peaks):
        say(line)
    peak32 = peaks["float32"]["peak"]

    compiled = {}
    if args.compile:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
        with torch.no_grad():
            for name, model, fn in (("ours", ours, None), ("theirs", theirs, None)):
                cm = torch.compile(model)
                t = time.perf_counter()
                if name == "ours":
                    fast_path(False)  # the fast path calls oneDNN ops inductor cannot lower; compile the reference
                    g = ours_fn(cm, False, states, mask)
                else:
                    g = theirs_fn(cm, states)
                g(x, 0.5)
                compiled[name] = (g, time.perf_counter() - t)
        fast_path(True)

    say()
    say(f"one forward, batch 2, interleaved, {args.runs} runs each")
    fwd = {"ours": lambda: f_fast(x, 0.5), "ours before": lambda: f_ref(x, 0.5), "diffusers": lambda: f_wan(x, 0.5)}
    if BF16:
        fwd["diffusers bf16 weights"] = lambda: f_wan16(x, 0.5)
    for name, (g, _) in compiled.items():
        fwd[f"{name} compiled"] = (lambda g=g: g(x, 0.5))
    with torch.no_grad():
        tf = interleaved(fwd, args.runs)
    fast_path(True)
    for k, v in tf.items():
        say(f"  {k:<16} {spread(v)}")
    med = {k: statistics.median(v) for k, v in tf.items()}
    if BF16:  # against diffusers' faster variant
        med["diffusers"] = min(med["diffusers"], med["diffusers bf16 weights"])
    say(f"  ours / diffusers = {med['ours'] / med['diffusers']:.2f}   (ours before / diffusers = "
        f"{med['ours before'] / med['diffusers']:.2f}; speed-up from the fast path {med['ours before'] / med['ours']:.2f}x)")
    if not BF16:
        say(f"  ours / diffusers {paired_ratios(tf, 'ours', 'diffusers')}")
    say(f"  ours: {flops_ours / med['ours'] / 1e9:.0f} GFLOP/s = {flops_ours / med['ours'] / 1e9 / peak32 * 100:.0f}% of the float32 peak; "
        f"diffusers: {counted_wan / med['diffusers'] / 1e9:.0f} GFLOP/s = {counted_wan / med['diffusers'] / 1e9 / peak32 * 100:.0f}%")
    for name, (_, ct) in compiled.items():
        say(f"  {name} compiled (torch.compile, inductor, freezing): compile + first call {ct:.1f} s")

    say()
    say(f"sampling loop: {args.steps} Euler steps with guidance (one batch-2 forward per step), the same loop for both, "
        f"interleaved, {args.loop_runs} runs each")
    noise = torch.randn(1, *LATENTS, generator=torch.Generator().manual_seed(1))
    from kinema.diffusion.sampling import sample

    loops = {
        "ours": lambda: euler_loop(f_fast, noise, args.steps),
        "ours before": lambda: euler_loop(f_ref, noise, args.steps),
        "diffusers": lambda: euler_loop(f_wan, noise, args.steps),
        **({"diffusers bf16 weights": lambda: euler_loop(f_wan16, noise, args.steps)} if BF16 else {}),
        "ours, kinema sample()": lambda: fast_path(True) or _sample_in(autocast(), sample, ours, noise, states[:1], mask[:1],
                                                                      uncond_states=states[1:], uncond_mask=mask[1:],
                                                                      guidance=5.0, steps=args.steps),
    }
    for name, (g, _) in compiled.items():
        loops[f"{name} compiled"] = (lambda g=g: euler_loop(g, noise, args.steps))
    with torch.no_grad():
        tl = interleaved(loops, args.loop_runs, warmup=1)
    fast_path(True)
    for k, v in tl.items():
        say(f"  {k:<22} {spread(v)}")
    lm = {k: statistics.median(v) for k, v in tl.items()}
    if BF16:
        lm["diffusers"] = min(lm["diffusers"], lm["diffusers bf16 weights"])
    ratio = lm["ours"] / lm["diffusers"]
    frac = flops_ours * args.steps / lm["ours"] / 1e9 / peak32
    say(f"  ours / diffusers = {ratio:.2f}   (ours before / diffusers = {lm['ours before'] / lm['diffusers']:.2f}; "
        f"speed-up from the fast path {lm['ours before'] / lm['ours']:.2f}x)")
    if not BF16:
        say(f"  ours / diffusers {paired_ratios(tl, 'ours', 'diffusers')}")
    say(f"  denoising efficiency: {flops_ours * args.steps / 1e9:.1f} GFLOP (analytic) in {lm['ours']:.3f} s = "
        f"{flops_ours * args.steps / lm['ours'] / 1e9:.0f} GFLOP/s = {frac * 100:.0f}% of the measured float32 peak "
        f"({peak32:.0f} GFLOP/s); before: {flops_ours * args.steps / lm['ours before'] / 1e9 / peak32 * 100:.0f}%; "
        f"diffusers: {counted_wan * args.steps / lm['diffusers'] / 1e9 / peak32 * 100:.0f}%")
    if BF16:
        peak16 = peaks["bfloat16"]["peak"]
        say(f"  (bf16: {flops_ours * args.steps / lm['ours'] / 1e9 / peak16 * 100:.0f}% of the measured bfloat16 peak, "
            f"{peak16:.0f} GFLOP/s; diffusers {counted_wan * args.steps / lm['diffusers'] / 1e9 / peak16 * 100:.0f}%)")

    say()
    say(f"peak memory of the {args.steps}-step loop (fresh subprocess per model; resident-set growth above the set "
        "just before the loop, VmHWM reset via /proc/self/clear_refs)")
    for which, label in (("ours", "ours"), ("ours-before", "ours before"), ("theirs", "diffusers"),
                         *((("theirs-bf16", "diffusers bf16 weights"),) if BF16 else ())):
        if which == "ours-before":
            os.environ["KINEMA_DIT_FAST"] = "0"
        m = run_memory(which, args.steps, threads)
        os.environ.pop("KINEMA_DIT_FAST", None)
        say(f"  {label:<12} +{m['growth_mb']:6.1f} MB during the loop (resident {m['rss_before_mb']:.0f} -> {m['loop_peak_mb']:.0f} MB; "
            f"weights {m['params_mb']:.0f} MB; whole-process peak {m['process_peak_mb']:.0f} MB)"
            + ("" if m["hwm_reset"] else "  [VmHWM could not be reset: growth includes loading]"))

    rtf_lines = []
    if not args.no_generate:
        say()
        say(f"real-time factor of the default clip (benchmarks/generate.py, {args.generate_runs} fresh processes, "
            f"OMP_NUM_THREADS={threads}; run first, before the models above were loaded)")
        for label, proc in generate_out:
            say(f"  {label}:")
            if proc.returncode != 0:
                say("    failed: " + proc.stderr.strip()[-500:])
                continue
            for line in proc.stdout.strip().splitlines():
                say("    " + line)
                if label == "ours" and ("real-time factor" in line or "whole process" in line):
                    rtf_lines.append(line.strip())

    say()
    say("targets")
    say(f"  our sampling loop / diffusers' <= 0.80: {ratio:.2f}  {'MET' if ratio <= 0.8 else 'NOT MET'}")
    say(f"  fraction of measured float32 peak >= 40%: {frac * 100:.0f}%  {'MET' if frac >= 0.4 else 'NOT MET'}"
        + ("  (bf16 matmuls)" if BF16 else ""))
    for line in rtf_lines:
        say(f"  {line}")
    say(f"load average at the end: {load_average()}; wall time of this benchmark {time.perf_counter() - t_start:.0f} s")
    say("note: ratios come from interleaved runs in one process; absolute times also move by up to ~15% between")
    say("processes with the state of the C heap (page faults of fresh large allocations), the same for every model.")

    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
