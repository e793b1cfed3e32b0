"""`kinema eval`: generate the benchmark's prompts with a model, judge every video with the
analyzer, and write report.json, report.md, samples.jsonl and contact_sheet.png."""

from __future__ import annotations

import json
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import KinemaError
from ..files import atomic_write
from ..video import grid_image
from ..world.analyze import analyze_frames
from ..world.spec import SceneSpec
from .judge import judge
from .kept_latents import KeptLatents, LatentKeeper, item_key, record_key
from .progress import RunProgress, jobs_digest, pipeline_fingerprint
from .prompts import Item, benchmark_items, check_categories
from .stats import mean_interval, wilson_interval

# (row name, categories it is measured on, verdict key, target seen, target held-out) — DESIGN §4
ROWS = [
    ("colour", ("single",), "color", 0.95, 0.90),
    ("shape", ("single",), "shape", 0.90, 0.80),
    ("size", ("single",), "size", 0.90, 0.80),
    ("motion direction", ("single",), "motion", 0.90, 0.80),
    ("count (1-3)", ("count",), "count", 0.85, 0.75),
    ("spatial relation", ("relation",), "relation", 0.85, 0.75),
    ("two-object binding", ("relation", "binding"), "binding", 0.80, 0.65),
    ("everything right", ("single", "count", "relation", "binding"), "everything", 0.70, 0.55),
]
STABILITY_TARGET = 0.98
ALIVE_TARGET = 0.95
# videos judged between two writes of the run's progress: what a kill can cost (~5 min on 2 cores)
PART_VIDEOS = 64


def _analyze_and_judge(args):
    category, spec_dict, frames = args
    facts = analyze_frames(frames)
    return facts, judge(category, SceneSpec.from_dict(spec_dict), facts, frames)


def _detected(obj: dict) -> dict:
    """What a sample keeps of one detected object: its attributes, how long it was seen, and
    where it was first seen (frame, and centre as fractions of width and height), which is
    enough to check placement, e.g. a relation, without keeping the whole track."""
    first = next((k for k, p in enumerate(obj["track"]) if p is not None), None)
    kept = {k: obj[k] for k in ("color", "shape", "size", "motion", "frames_seen")}
    if first is not None:
        kept["first_frame"], kept["first_xy"] = first, obj["track"][first]
    return kept


def generate_all(pipe, items: list[Item], seeds, steps=None, guidance=None, batch_size: int = 16,
                 on_progress: Callable[[int, int], None] | None = None, sampler: str | None = None,
                 shift: float | None = None, guidance_interval: tuple[float, float] | None = None,
                 keeper: LatentKeeper | None = None, kept: KeptLatents | None = None,
                 skip: set[str] | frozenset = frozenset()):
    """Yield (item, seed, Video) for every item and seed, batched when the pipeline can, but for
    the (item, seed) keys in `skip` (`item_key`; videos a resumed run has judged). With `keeper`,
    each video's latents are handed to it; with `kept`, nothing is sampled: a run's kept latents
    are decoded by this pipeline."""
    jobs = [(item, seed) for item in items for seed in seeds if item_key(item, seed) not in skip]
    batched = hasattr(pipe, "generate_batch")
    if (keeper or kept) and not batched:
        raise KinemaError("keeping or reusing latents needs a Kinema pipeline (one that samples in batches)")
    if kept is not None:
        kept.check(jobs)
    done = 0
    for start in range(0, len(jobs), batch_size if batched else 1):
        chunk = jobs[start:start + (batch_size if batched else 1)]
        if kept is not None:
            videos = pipe.videos_from_latents(*kept.batch(chunk))
        else:
            videos = _sample_chunk(pipe, chunk, batched, keeper, steps=steps, guidance=guidance, sampler=sampler,
                                   shift=shift, guidance_interval=guidance_interval)
        for (item, seed), video in zip(chunk, videos):
            yield item, seed, video
        done += len(chunk)
        if on_progress:
            on_progress(done, len(jobs))


def _sample_chunk(pipe, chunk: list[tuple[Item, int]], batched: bool, keeper: LatentKeeper | None, *, steps,
                  guidance, sampler, shift, guidance_interval) -> list:
    """Videos for (item, seed) jobs of one clip shape: one batch, or one job for a pipeline without
    `generate_batch`; each video's latents go to `keeper` when there is one."""
    first = chunk[0][0].spec
    kwargs = dict(num_frames=first.num_frames, size=f"{first.width}x{first.height}", fps=first.fps,
                  steps=steps, guidance=guidance, sampler=sampler, shift=shift)
    if guidance_interval is not None:  # asked for: a pipeline without it fails by name
        kwargs["guidance_interval"] = guidance_interval
    if batched:
        videos = pipe.generate_batch([it.prompt for it, _ in chunk], seeds=[s for _, s in chunk],
                                     progress=False, return_latents=keeper is not None, **kwargs)
        if keeper is None:
            return videos
        videos, latents = videos
        for i, ((item, seed), video) in enumerate(zip(chunk, videos)):
            keeper.add(item, seed, latents[i], video.metadata)
        return videos
    return [pipe.generate(chunk[0][0].prompt, seed=chunk[0][1], progress=False, **kwargs)]


def run_eval(pipe, out_dir: str | os.PathLike, n: int = 200, seeds=(0, 1), steps: int | None = None,
             guidance: float | None = None, batch_size: int = 16, workers: int | None = None,
             sampler: str | None = None, shift: float | None = None,
             guidance_interval: tuple[float, float] | None = None,
             model_name: str = "", progress: bool = True, size_kwargs: dict | None = None,
             items: list[Item] | None = None, categories=None, keep_latents: bool = False,
             latents_from: str | os.PathLike | None = None, resume: bool = False) -> dict:
    """`size_kwargs` (width, height, fps, num_frames) overrides the default 2 s 128×128 12 fps clip.
    `items` replaces the benchmark's first `n` prompts per category and split (e.g. fresh prompts
    beyond them, to re-test a comparison). `categories` (e.g. ("count",)) runs only those
    categories' prompts, the same ones a whole run makes. `keep_latents` writes the drawn latents
    to OUT/latents.safetensors; `latents_from` (a run that kept them) decodes those instead of
    sampling, with the sampling settings that run used (see `kept_latents`). The run keeps its
    progress in OUT/unfinished/ as it goes; `resume` continues a run stopped part-way, refused
    if it was started with other weights, prompts or settings (see `progress`)."""
    kept = None
    if latents_from is not None and keep_latents:
        raise KinemaError("--keep-latents with --latents-from: the latents are already kept in that run")
    if latents_from is not None:
        if any(x is not None for x in (steps, guidance, sampler, shift, guidance_interval)):
            raise KinemaError("--latents-from decodes latents already drawn: sampling settings "
                              "(steps, guidance, sampler, shift, guidance interval) do not apply")
        kept = KeptLatents(latents_from, pipe)
    keeper = LatentKeeper(pipe) if keep_latents else None
    chosen = None if categories is None else check_categories(categories)
    if items is None:
        items = benchmark_items(n, categories=chosen, **(size_kwargs or {}))
    elif chosen is not None:
        items = [it for it in items if it.category in chosen]
    jobs = [(item, seed) for item in items for seed in seeds]
    if kept is not None:
        kept.check(jobs)  # refused before anything is written
    asked = {} if guidance_interval is None else {"guidance_interval": guidance_interval}
    settings = (pipe.resolve_sampling(steps, guidance, sampler, shift, **asked)
                if hasattr(pipe, "resolve_sampling") else None)
    only = {} if chosen is None else {"categories": list(chosen)}
    if kept is not None:
        settings, only["latents_from"] = kept.settings, str(kept.path)
    identity = json.loads(json.dumps({
        "weights": pipeline_fingerprint(pipe), "prompts": jobs_digest(jobs), "videos": len(jobs), "n": n,
        "seeds": list(seeds), "categories": list(chosen or ()), "settings": settings,
        "asked": {"steps": steps, "guidance": guidance, "sampler": sampler, "shift": shift, **asked},
        "latents_from": None if kept is None else str(kept.path.resolve()), "keep_latents": keep_latents}))
    run_progress = RunProgress(out_dir, identity, resume)
    out = run_progress.out
    done = run_progress.done
    if keeper is not None:
        keeper.latents.update(run_progress.latents)
        keeper.metadata.update(run_progress.metadata)
    records = list(run_progress.records)
    sheet_cells = [(r, run_progress.sheet_frames[record_key(r)]) for r in records
                   if record_key(r) in run_progress.sheet_frames]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), initial=len(done), desc="eval", unit="video")
    t0 = last_part = time.perf_counter()
    workers = workers or max(1, min(16, (os.cpu_count() or 1) - 1))
    pending = []

    def collect(fut_list):
        nonlocal last_part
        new_records, new_cells = [], {}
        for item, seed, video, fut in fut_list:
            facts, verdict = fut.result() if hasattr(fut, "result") else fut
            record = {**item.to_dict(), "seed": seed, "verdict": verdict,
                      "detected": [_detected(o) for o in facts["objects"]]}
            if video.metadata.get("plan"):  # what the scene planner made of the prompt
                record["plan"] = video.metadata["plan"]
            new_records.append(record)
            if len(sheet_cells) < 24 and item.index % max(1, n // 3) == 0 and seed == seeds[0]:
                frames = video.frames[[0, len(video.frames) // 2, len(video.frames) - 1]]
                sheet_cells.append((record, frames))
                new_cells[item_key(item, seed)] = frames
        records.extend(new_records)
        keys = [record_key(r) for r in new_records]
        now = time.perf_counter()
        run_progress.add_part(new_records, now - last_part,
                              latents={k: keeper.latents[k] for k in keys} if keeper else None,
                              metadata={k: keeper.metadata[k] for k in keys} if keeper else None,
                              sheet_frames=new_cells)
        last_part = now

    pool = ProcessPoolExecutor(workers) if workers > 1 else None
    try:
        for item, seed, video in generate_all(pipe, items, seeds, steps, guidance, batch_size,
                                                  sampler=sampler, shift=shift,
                                                  guidance_interval=guidance_interval,
                                                  keeper=keeper, kept=kept, skip=done):
            args = (item.category, item.spec.to_dict(), video.frames)
            fut = pool.submit(_analyze_and_judge, args) if pool else _analyze_and_judge(args)
            pending.append((item, seed, video, fut))
            if len(pending) >= PART_VIDEOS:
                collect(pending)
                pending = []
            if bar:
                bar.update(1)
        if pending:
            collect(pending)
    finally:
        if pool:
            pool.shutdown()
        if bar:
            bar.close()
    elapsed = run_progress.elapsed + time.perf_counter() - t0
    order = {item_key(item, seed): i for i, (item, seed) in enumerate(jobs)}
    records.sort(key=lambda r: order[record_key(r)])
    sheet_cells.sort(key=lambda cell: order[record_key(cell[0])])
    if run_progress.sessions > 1:
        only["sessions"] = run_progress.sessions
    if keeper is not None:
        keeper.save(out, settings)
    report = summarize(records, n=n, seeds=list(seeds), elapsed=elapsed, model=model_name, steps=steps,
                       guidance=guidance, sampler=sampler, shift=shift, settings=settings, **only)
    _write(out, report, records, sheet_cells)
    run_progress.finish()
    return report


def summarize(records: list[dict], **meta) -> dict:
    rows = []
    for name, cats, key, t_seen, t_held in ROWS:
        row = {"category": name, "verdict": key}
        for split, target in (("seen", t_seen), ("heldout", t_held)):
            vals = [r["verdict"][key] for r in records if r["category"] in cats and r["split"] == split
                    and r["verdict"].get(key) is not None]
            k = int(sum(bool(v) for v in vals))
            lo, hi = wilson_interval(k, len(vals))
            row[split] = {"rate": k / len(vals) if vals else None, "n": len(vals), "ci95": [lo, hi],
                          "target": target, "met": bool(vals) and k / len(vals) >= target}
        rows.append(row)
    stab = [r["verdict"]["stability"] for r in records if "stability" in r["verdict"]]
    m, lo, hi = mean_interval(stab)
    alive = [a for r in records for a in r["verdict"].get("alive", [])]
    ka = int(sum(alive))
    alo, ahi = wilson_interval(ka, len(alive))
    return {
        "meta": {**meta, "videos": len(records), "machine": platform.platform(), "python": platform.python_version()},
        "rows": rows,
        "temporal_stability": {"mean": m, "ci95": [lo, hi], "n": len(stab), "target": STABILITY_TARGET,
                               "met": bool(stab) and m >= STABILITY_TARGET},
        "object_alive": {"rate": ka / len(alive) if alive else None, "ci95": [alo, ahi], "n": len(alive),
                         "target": ALIVE_TARGET, "met": bool(alive) and ka / len(alive) >= ALIVE_TARGET},
    }


def _pct(x):
    return "–" if x is None else f"{100 * x:.1f}%"


def _settings_text(meta: dict) -> str:
    """'steps 20, guidance 1.0, sampler multistep, shift 6.0': the settings the run used where the
    report knows them (`settings`, resolved by the pipeline), else what was asked or 'default'."""
    used = meta.get("settings") or {}
    parts = []
    for key in ("steps", "guidance", "guidance_interval", "sampler", "shift", "precision", "layout"):
        if key in ("guidance_interval", "precision", "layout") and key not in used:
            continue  # runs from before the setting existed (float32, no layout), or guided at every step
        if key in used:
            value = used[key] if used[key] is not None else "by token count"
        else:
            value = meta.get(key) if meta.get(key) is not None else "default"
        if key == "guidance_interval":  # guided only at times t in [lo, hi]
            parts.append("guidance interval [{:g}, {:g}]".format(*value))
            continue
        parts.append(f"{key} {value}")
    return ", ".join(parts)


def _sessions_text(meta: dict) -> str:
    """' over 3 sessions' for a run resumed twice (`kinema eval --resume`), else ''."""
    return f" over {meta['sessions']} sessions" if meta.get("sessions", 1) > 1 else ""


def markdown(report: dict) -> str:
    meta = report["meta"]
    only = f", categories {', '.join(meta['categories'])} only" if meta.get("categories") else ""
    lines = [f"# Kinema benchmark — {meta.get('model') or 'model'}", "",
             f"{meta['videos']} videos ({meta['n']} prompts per category and split × {len(meta['seeds'])} seeds{only}), "
             f"{_settings_text(meta)}, "
             f"{meta['elapsed']:.0f} s{_sessions_text(meta)}. Judge: the world analyzer. Intervals: 95% Wilson."
             + (f" Latents drawn by the same transformer in an earlier run ({meta['latents_from']}), decoded "
                "by this pipeline." if meta.get("latents_from") else ""), "",
             "| category | seen | 95% CI | target | held-out | 95% CI | target |", "|---|---|---|---|---|---|---|"]
    for row in report["rows"]:
        s, h = row["seen"], row["heldout"]
        mark = lambda d: ("✅" if d["met"] else "❌") if d["rate"] is not None else ""
        ci = lambda d: f"{_pct(d['ci95'][0])}–{_pct(d['ci95'][1])}" if d["rate"] is not None else ""
        lines.append(f"| {row['category']} | {_pct(s['rate'])} {mark(s)} | {ci(s)} | "
                     f"≥ {_pct(s['target'])} | {_pct(h['rate'])} {mark(h)} | {ci(h)} | "
                     f"≥ {_pct(h['target'])} |")
    st, al = report["temporal_stability"], report["object_alive"]
    stability = "| temporal stability (static prompts; 1 − mean frame difference) |"
    if st["n"]:
        lines.append(f"{stability} {st['mean']:.4f} {'✅' if st['met'] else '❌'} | "
                     f"{st['ci95'][0]:.4f}–{st['ci95'][1]:.4f} | ≥ {st['target']} | | | |")
    else:  # a run without the static category
        lines.append(f"{stability} – | | ≥ {st['target']} | | | |")
    lines.append(f"| object kept alive in every frame | {_pct(al['rate'])} {'✅' if al['met'] else '❌'} | "
                 f"{_pct(al['ci95'][0])}–{_pct(al['ci95'][1])} | ≥ {_pct(al['target'])} | | | |")
    lines += ["", "![sampled results](contact_sheet.png)", ""]
    return "\n".join(lines)


def _write(out: Path, report: dict, records: list[dict], cells: list[tuple[dict, np.ndarray]]) -> None:
    """The report's files, each whole or not at all. `cells`: (record, its first, middle and last
    frames) for the contact sheet."""
    atomic_write(out / "report.json", lambda p: p.write_text(json.dumps(report, indent=1)))
    atomic_write(out / "report.md", lambda p: p.write_text(markdown(report)))
    atomic_write(out / "samples.jsonl", lambda p: p.write_text("".join(json.dumps(r) + "\n" for r in records)))
    if cells:
        images, labels = [], []
        for record, frames in cells:
            ok = "OK" if record["verdict"].get("everything") else "X"
            prompt = record["prompt"]
            for j, frame in enumerate(frames):
                images.append(frame)
                labels.append(f"{ok} {record['category']}/{record['split']}" if j == 0 else (prompt[:22] if j == 1 else prompt[22:44]))
        sheet = grid_image(images, labels, columns=6, title="kinema eval: start / middle / end of sampled videos")
        atomic_write(out / "contact_sheet.png", lambda p: sheet.save(p, format="PNG"))
