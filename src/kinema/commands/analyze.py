"""`kinema analyze VIDEO [--json]`: what the analyzer reads in a world video."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="read a world video back into facts (objects, motion, relations)")
    p.add_argument("video", help="video file (.mp4, .gif, .png) or folder of frames")
    p.add_argument("--json", action="store_true", help="print the facts as JSON")
    p.set_defaults(func=_analyze)


def _analyze(args) -> int:
    from ..video import Video
    from ..world.analyze import analyze_video

    facts = analyze_video(Video.read(args.video))
    if args.json:
        print(json.dumps(facts))
        return 0
    print(f"background: {facts['background']}, {facts['num_frames']} frames, {facts['count']} object(s)")
    for i, o in enumerate(facts["objects"]):
        print(f"  [{i}] {o['size']} {o['color']} {o['shape']}, {o['motion']}, seen in {o['frames_seen']} frames")
    for r in facts["relations"]:
        print(f"  [{r['subject']}] {r['relation']} [{r['object']}]")
    return 0
