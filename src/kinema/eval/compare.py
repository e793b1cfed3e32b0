"""Two `kinema eval` runs of the same prompts and seeds, compared video by video.

Both runs judge the very same (category, split, prompt index, seed) items, so the comparison is
paired: for each report row, the difference of the rates B − A with a 95% interval from the
discordant pairs (items that one model gets right and the other wrong). That interval is narrower
than comparing the two Wilson intervals side by side, and it is what "no quality loss beyond the
95% interval" means for a speed change: the change is a loss only when the whole interval lies
below zero.
"""

from __future__ import annotations

import gzip
import json
import math
import os
from pathlib import Path

import numpy as np

from ..errors import KinemaError
from .run import ROWS

Z95 = 1.96


def samples_or_exit(path: str | os.PathLike, program: str) -> list[dict]:
    """`read_samples` for a command-line tool: a bad path or file ends `program` with the reason."""
    try:
        return read_samples(path)
    except KinemaError as exc:
        raise SystemExit(f"{program}: {exc}") from None


def read_samples(path: str | os.PathLike) -> list[dict]:
    """The records of a samples.jsonl (or .jsonl.gz), or of the samples file in a report folder."""
    p = Path(path)
    if p.is_dir():
        candidates = [p / "samples.jsonl", p / "samples.jsonl.gz"]
        found = [c for c in candidates if c.is_file()]
        if not found:
            raise KinemaError(f"{p}: no samples.jsonl or samples.jsonl.gz (not a kinema eval folder)")
        p = found[0]
    if not p.is_file():
        raise KinemaError(f"{p}: no such file")
    opener = gzip.open if p.suffix == ".gz" else open
    try:
        with opener(p, "rt", encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, json.JSONDecodeError) as exc:
        raise KinemaError(f"{p}: not a kinema eval samples file ({exc})") from None


def _key(record: dict) -> tuple:
    return (record["category"], record["split"], int(record["index"]), int(record["seed"]))


def paired_difference(a: list[bool], b: list[bool]) -> dict:
    """Rates of a and b (paired, same length) and the 95% interval of b − a from the discordant pairs."""
    n = len(a)
    if n == 0:
        return {"n": 0, "rate_a": None, "rate_b": None, "diff": None, "ci95": [None, None], "verdict": "no data"}
    only_a = sum(1 for x, y in zip(a, b) if x and not y)
    only_b = sum(1 for x, y in zip(a, b) if y and not x)
    diff = (only_b - only_a) / n
    half = Z95 * math.sqrt(max(only_a + only_b - (only_b - only_a) ** 2 / n, 0.0)) / n
    lo, hi = diff - half, diff + half
    return {"n": n, "rate_a": sum(a) / n, "rate_b": sum(b) / n, "diff": diff, "ci95": [lo, hi],
            "verdict": _verdict(lo, hi)}


def paired_mean_difference(a: list[float], b: list[float]) -> dict:
    """Means of a and b (paired) and the 95% normal interval of the mean of b − a."""
    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    if d.size == 0:
        return {"n": 0, "mean_a": None, "mean_b": None, "diff": None, "ci95": [None, None], "verdict": "no data"}
    half = Z95 * float(d.std(ddof=1)) / math.sqrt(d.size) if d.size > 1 else 0.0
    m = float(d.mean())
    return {"n": int(d.size), "mean_a": float(np.mean(a)), "mean_b": float(np.mean(b)), "diff": m,
            "ci95": [m - half, m + half], "verdict": _verdict(m - half, m + half)}


def _verdict(lo: float, hi: float) -> str:
    if hi < 0:
        return "worse"
    if lo > 0:
        return "better"
    return "same within the interval"


def compare(records_a: list[dict], records_b: list[dict]) -> dict:
    """Row by row, B against A, on the items both runs judged."""
    a_by_key = {_key(r): r for r in records_a}
    b_by_key = {_key(r): r for r in records_b}
    common = sorted(set(a_by_key) & set(b_by_key))
    if not common:
        raise KinemaError("the two runs share no (category, split, prompt, seed) item: not the same benchmark")
    for k in common:
        if a_by_key[k].get("prompt") != b_by_key[k].get("prompt"):
            raise KinemaError(f"item {k}: the prompts differ ({a_by_key[k].get('prompt')!r} vs "
                              f"{b_by_key[k].get('prompt')!r}): not the same benchmark version")
    pairs = [(a_by_key[k], b_by_key[k]) for k in common]
    rows = []
    for name, cats, key, _, _ in ROWS:
        row = {"category": name}
        for split in ("seen", "heldout"):
            both = [(ra["verdict"].get(key), rb["verdict"].get(key)) for ra, rb in pairs
                    if ra["category"] in cats and ra["split"] == split]
            both = [(bool(x), bool(y)) for x, y in both if x is not None and y is not None]
            row[split] = paired_difference([x for x, _ in both], [y for _, y in both])
        rows.append(row)
    stab = [(ra["verdict"]["stability"], rb["verdict"]["stability"]) for ra, rb in pairs
            if "stability" in ra["verdict"] and "stability" in rb["verdict"]]
    alive = [(_alive_fraction(ra), _alive_fraction(rb)) for ra, rb in pairs]
    return {"items": len(common), "only_in_a": len(a_by_key) - len(common), "only_in_b": len(b_by_key) - len(common),
            "rows": rows,
            "temporal_stability": paired_mean_difference([x for x, _ in stab], [y for _, y in stab]),
            "object_alive": paired_mean_difference([x for x, _ in alive], [y for _, y in alive])}


def _alive_fraction(record: dict) -> float:
    """The share of the intended objects kept alive in every frame. Counted over the scene's
    objects, so runs judged before the judge listed unseen objects (as not alive) compare too."""
    intended = len(record["spec"]["objects"])
    return sum(bool(a) for a in record["verdict"].get("alive", [])) / intended if intended else 0.0


def _pct(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "–"
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}%"


def markdown(result: dict, name_a: str, name_b: str) -> str:
    """The comparison as a Markdown table (rates in %, differences in percentage points)."""
    lines = [f"# {name_b} against {name_a}, paired", "",
             f"{result['items']} items judged by both (same prompts and seeds). Difference B − A in "
             "percentage points, 95% interval from the discordant pairs.", "",
             "| category | split | A | B | B − A | 95% interval | verdict |", "|---|---|---|---|---|---|---|"]
    unjudged = []
    for row in result["rows"]:
        empty = [split for split in ("seen", "heldout") if not row[split]["n"]]
        if empty:
            unjudged.append(row["category"] if len(empty) == 2 else f"{row['category']} ({empty[0]})")
        for split in ("seen", "heldout"):
            d = row[split]
            if not d["n"]:
                continue
            lo, hi = d["ci95"]
            lines.append(f"| {row['category']} | {split} | {_pct(d['rate_a'])} | {_pct(d['rate_b'])} | "
                         f"{_pct(d['diff'], True)} | {_pct(lo, True)} to {_pct(hi, True)} | {d['verdict']} |")
    al = result["object_alive"]
    lines.append(f"| object kept alive (share per video) | all | {_pct(al['mean_a'])} | {_pct(al['mean_b'])} | {_pct(al['diff'], True)} | "
                 f"{_pct(al['ci95'][0], True)} to {_pct(al['ci95'][1], True)} | {al['verdict']} |")
    st = result["temporal_stability"]
    if st["n"]:
        lines.append(f"| temporal stability | static | {st['mean_a']:.5f} | {st['mean_b']:.5f} | {st['diff']:+.1e} | "
                     f"{st['ci95'][0]:+.1e} to {st['ci95'][1]:+.1e} | {st['verdict']} |")
    worse = [f"{r['category']} ({s})" for r in result["rows"] for s in ("seen", "heldout") if r[s]["verdict"] == "worse"]
    worse += ["object kept alive"] * (al["verdict"] == "worse") + ["temporal stability"] * (st["verdict"] == "worse")
    lines += ["", f"Worse beyond the interval: {', '.join(worse) if worse else 'nothing'}."]
    if unjudged:  # e.g. a run of a few categories (`kinema eval --categories`)
        lines += ["", f"Not in both runs: {', '.join(unjudged)}."]
    lines.append("")
    return "\n".join(lines)
