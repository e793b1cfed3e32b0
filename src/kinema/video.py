"""`Video`: uint8 frames [T, H, W, 3] with a frame rate and metadata; reading and writing files.

MP4 goes through PyAV (H.264, yuv420p, which every player opens); GIF and PNG through Pillow.
H.264 in yuv420p needs even sizes, so odd sizes are padded by edge replication on write and the
true size is stored in the file's metadata, which `Video.read` uses to crop the padding away.
"""

from __future__ import annotations

from .errors import KinemaError
from .files import atomic_write

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from PIL import Image, ImageDraw, ImageFont


class VideoError(KinemaError, ValueError):
    """A video file or array that cannot be used; the message names the problem."""


_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
_META_KEY = "kinema"


@dataclass
class Video:
    frames: np.ndarray
    fps: float = 12.0
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        frames = np.asarray(self.frames)
        if frames.ndim == 3 and frames.shape[-1] == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise VideoError(f"frames must have shape [T, H, W, 3], got {tuple(frames.shape)}")
        if frames.shape[0] < 1:
            raise VideoError("a video needs at least one frame")
        if frames.dtype != np.uint8:
            if np.issubdtype(frames.dtype, np.floating):
                frames = np.clip(np.round(frames * 255.0), 0, 255)
            frames = frames.astype(np.uint8)
        if not (self.fps > 0 and math.isfinite(self.fps)):
            raise VideoError(f"fps must be a positive number, got {self.fps}")
        self.frames = np.ascontiguousarray(frames)

    # ----- basic properties -------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.width, self.height

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    def __len__(self) -> int:
        return self.num_frames

    def to_tensor(self):
        """Frames as a float tensor [3, T, H, W] in [-1, 1] (the models' input)."""
        import torch

        x = torch.from_numpy(self.frames).permute(3, 0, 1, 2).float()
        return x / 127.5 - 1.0

    @classmethod
    def from_tensor(cls, x, fps: float = 12.0, metadata: dict | None = None) -> "Video":
        """From a float tensor [3, T, H, W] in [-1, 1]."""
        arr = ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to("cpu")
        arr = arr.permute(1, 2, 3, 0).numpy().astype(np.uint8)
        return cls(arr, fps=fps, metadata=dict(metadata or {}))

    @classmethod
    def from_image(cls, image: Any, fps: float = 12.0) -> "Video":
        """A one-frame video from a path, PIL image or [H, W, 3] array."""
        if isinstance(image, (str, os.PathLike)):
            return cls.read(image)
        if isinstance(image, Image.Image):
            return cls(np.asarray(image.convert("RGB")), fps=fps)
        return cls(np.asarray(image), fps=fps)

    # ----- writing --------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, crf: int = 16) -> Path:
        """Write by suffix: .mp4/.mov (H.264), .gif, .png (one frame) or a folder (PNG frames).

        The file appears atomically: it is written beside its destination and renamed into place.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix in (".mp4", ".mov", ".m4v"):
            atomic_write(path, lambda tmp: self._write_mp4(tmp, crf))
        elif suffix == ".gif":
            atomic_write(path, self._write_gif)
        elif suffix in _IMAGE_SUFFIXES:
            if self.num_frames != 1:
                raise VideoError(
                    f"{path.name}: an image file holds one frame, this video has {self.num_frames}; "
                    "save to a folder for PNG frames"
                )
            atomic_write(path, lambda tmp: Image.fromarray(self.frames[0]).save(tmp, format=_pil_format(suffix)))
        elif suffix == "":
            path.mkdir(parents=True, exist_ok=True)
            for i, frame in enumerate(self.frames):
                atomic_write(path / f"frame_{i:05d}.png", lambda tmp, f=frame: Image.fromarray(f).save(tmp, format="PNG"))
        else:
            raise VideoError(f"unknown video file type {suffix!r}; use .mp4, .gif, .png or a folder")
        return path

    def _write_mp4(self, path: Path, crf: int) -> None:
        import av

        h, w = self.height, self.width
        pad_h, pad_w = h % 2, w % 2
        frames = self.frames
        if pad_h or pad_w:
            frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        meta = dict(self.metadata)
        meta["width"], meta["height"] = w, h
        with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart+use_metadata_tags"}) as container:
            container.metadata[_META_KEY] = json.dumps(meta, separators=(",", ":"))
            rate = _fps_fraction(self.fps)
            stream = container.add_stream("libx264", rate=rate)
            stream.width, stream.height = w + pad_w, h + pad_h
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(crf), "preset": "fast"}
            stream.codec_context.color_range = 1  # limited ("tv") range, what players assume
            for frame in frames:
                vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
                for packet in stream.encode(vf):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)

    def _write_gif(self, path: Path) -> None:
        images = [Image.fromarray(f) for f in self.frames]
        duration_ms = max(20, int(round(1000.0 / self.fps)))
        images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0)

    # ----- reading --------------------------------------------------------------------------
    @classmethod
    def read(cls, path: str | os.PathLike) -> "Video":
        """Read an MP4/MOV/WebM/GIF/PNG file or a folder of image frames."""
        path = Path(path)
        if not path.exists():
            raise VideoError(f"{path}: no such file")
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
            if not files:
                raise VideoError(f"{path}: folder holds no image frames")
            frames = [np.asarray(_open_image(p)) for p in files]
            if len({f.shape for f in frames}) != 1:
                raise VideoError(f"{path}: frames differ in size")
            return cls(np.stack(frames))
        if path.stat().st_size == 0:
            raise VideoError(f"{path}: file is empty")
        suffix = path.suffix.lower()
        if suffix in _IMAGE_SUFFIXES:
            return cls(np.asarray(_open_image(path))[None])
        if suffix == ".gif":
            return cls._read_gif(path)
        return cls._read_av(path)

    @classmethod
    def _read_gif(cls, path: Path) -> "Video":
        try:
            img = Image.open(path)
            frames, durations = [], []
            for i in range(getattr(img, "n_frames", 1)):
                img.seek(i)
                frames.append(np.asarray(img.convert("RGB")))
                durations.append(img.info.get("duration", 83) or 83)
        except Exception as exc:  # Pillow raises many types for bad files
            raise VideoError(f"{path}: not a readable GIF ({exc})") from None
        return cls(np.stack(frames), fps=1000.0 / float(np.median(durations)))

    @classmethod
    def _read_av(cls, path: Path) -> "Video":
        import av

        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    raise VideoError(f"{path}: holds no video stream")
                stream = container.streams.video[0]
                fps = float(stream.average_rate or stream.guessed_rate or 12)
                raw = container.metadata.get(_META_KEY)
                frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        except VideoError:
            raise
        except Exception as exc:  # PyAV raises its own error family for unreadable files
            raise VideoError(f"{path}: not a readable video ({type(exc).__name__}: {exc})") from None
        if not frames:
            raise VideoError(f"{path}: video has no frames")
        meta: dict[str, Any] = {}
        if raw:
            try:
                meta = json.loads(raw)
            except json.JSONDecodeError:
                meta = {}
        arr = np.stack(frames)
        w, h = meta.pop("width", None), meta.pop("height", None)
        if isinstance(w, int) and isinstance(h, int) and w <= arr.shape[2] and h <= arr.shape[1]:
            arr = arr[:, :h, :w]
        return cls(arr, fps=fps, metadata=meta)

    # ----- pictures -------------------------------------------------------------------------
    def contact_sheet(self, path: str | os.PathLike | None = None, columns: int = 6, max_frames: int = 12,
                      title: str | None = None) -> Image.Image:
        """A grid of evenly spaced frames, each labelled with its time; saved as PNG if `path`."""
        idx = np.linspace(0, self.num_frames - 1, num=min(max_frames, self.num_frames)).round().astype(int)
        labels = [f"{i / self.fps:.2f}s" for i in idx]
        sheet = grid_image([self.frames[i] for i in idx], labels, columns=columns, title=title)
        if path is not None:
            atomic_write(Path(path), lambda tmp: sheet.save(tmp, format="PNG"))
        return sheet


def grid_image(images: Iterable[np.ndarray], labels: Iterable[str] | None = None, columns: int = 6,
               title: str | None = None, pad: int = 4, label_height: int = 14) -> Image.Image:
    """Tile [H, W, 3] images into one picture, each with a caption line below it."""
    images = list(images)
    labels = list(labels) if labels is not None else [""] * len(images)
    if not images:
        raise VideoError("nothing to put on a contact sheet")
    cell_w = max(im.shape[1] for im in images)
    cell_h = max(im.shape[0] for im in images)
    cols = max(1, min(columns, len(images)))
    rows = math.ceil(len(images) / cols)
    top = label_height + pad if title else 0
    sheet = Image.new("RGB", (cols * (cell_w + pad) + pad, top + rows * (cell_h + label_height + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    if title:
        draw.text((pad, pad // 2), title, fill=(0, 0, 0), font=font)
    for k, (im, label) in enumerate(zip(images, labels)):
        r, c = divmod(k, cols)
        x = pad + c * (cell_w + pad)
        y = top + pad + r * (cell_h + label_height + pad)
        sheet.paste(Image.fromarray(im), (x, y))
        draw.text((x, y + im.shape[0] + 1), label, fill=(0, 0, 0), font=font)
    return sheet


def _open_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except Exception as exc:
        raise VideoError(f"{path}: not a readable image ({exc})") from None


def _pil_format(suffix: str) -> str:
    return {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP"}.get(suffix, "PNG")


def _fps_fraction(fps: float):
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1001)
