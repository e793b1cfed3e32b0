"""Uploads in, derived pictures out: bounded image and video decoding, fitting to the model's
size, thumbnails and sprite sheets. Every output file is written atomically."""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from ..files import atomic_write
from ..video import Video
from .schemas import ApiError, bad_request
from .sizes import MAX_SIDE, MIN_SIDE, MULTIPLE

THUMBNAIL = "thumbnail.webp"
SPRITESHEET = "spritesheet.jpg"
VIDEO = "video.mp4"
CONTENT_TYPES = {"video": "video/mp4", "thumbnail": "image/webp", "spritesheet": "image/jpeg"}
FILES = {"video": VIDEO, "thumbnail": THUMBNAIL, "spritesheet": SPRITESHEET}


# ----- images ---------------------------------------------------------------------------------
def decode_data_url(url: str, param: str) -> bytes:
    if not url.startswith("data:"):
        raise bad_request("image_url must be a base64 data URL (data:image/png;base64,...); this server "
                          "does not fetch remote URLs - upload the image as a file instead", param)
    header, _, payload = url.partition(",")
    if ";base64" not in header:
        raise bad_request("image_url data URL must be base64-encoded", param)
    try:
        return base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError):
        raise bad_request("image_url holds invalid base64", param) from None


def open_image(data: bytes, max_pixels: int, param: str) -> Image.Image:
    """Decode an uploaded image, refusing one with too many pixels before decoding its pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))          # reads the header only
            w, h = img.size
            if w * h > max_pixels or w < 1 or h < 1:
                raise bad_request(f"image is {w}x{h} pixels; this server accepts at most {max_pixels} pixels",
                                  param, code="image_too_large")
            img.load()
            return img.convert("RGB")
    except ApiError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise bad_request("image has too many pixels (decompression bomb refused)", param,
                          code="image_too_large") from None
    except Exception as exc:  # Pillow raises many types for bad files
        raise bad_request(f"not a readable image ({type(exc).__name__})", param, code="invalid_image") from None


def fit_image(img: Image.Image, width: int, height: int) -> Image.Image:
    """Centre-crop to the target aspect, then resize (what the model is asked to animate)."""
    w, h = img.size
    target = width / height
    if w / h > target:
        new_w = max(1, round(h * target))
        x0 = (w - new_w) // 2
        img = img.crop((x0, 0, x0 + new_w, h))
    elif w / h < target:
        new_h = max(1, round(w / target))
        y0 = (h - new_h) // 2
        img = img.crop((0, y0, w, y0 + new_h))
    if img.size != (width, height):
        img = img.resize((width, height), Image.LANCZOS)
    return img


# ----- videos ---------------------------------------------------------------------------------
def read_upload_video(path: Path, max_pixels: int, max_frames: int, param: str) -> Video:
    """Decode at most `max_frames` frames of an uploaded clip whose frame size is checked first."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise bad_request("the uploaded file holds no video stream", param, code="invalid_video")
            stream = container.streams.video[0]
            w, h = stream.codec_context.width, stream.codec_context.height
            if w * h > max_pixels:
                raise bad_request(f"video is {w}x{h}; this server accepts at most {max_pixels} pixels per frame",
                                  param, code="video_too_large")
            fps = float(stream.average_rate or stream.guessed_rate or 12)
            frames = []
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) >= max_frames:
                    break
    except ApiError:
        raise
    except Exception as exc:  # PyAV's error family, or anything else a hostile file provokes
        raise bad_request(f"not a readable video ({type(exc).__name__})", param, code="invalid_video") from None
    if not frames:
        raise bad_request("the uploaded video has no frames", param, code="invalid_video")
    if not (0 < fps < 1000):
        fps = 12.0
    return Video(np.stack(frames), fps=fps)


def model_size_for(width: int, height: int, scale: int, max_pixels: int) -> tuple[int, int]:
    """The size to render a source clip at: its own if it is no larger than the model's scale
    (shorter side <= scale) and within limits, else its aspect at the model's scale (like OpenAI
    sizes: 1280x720 -> 224x128)."""
    if (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE and width * height <= max_pixels
            and min(width, height) <= scale):
        return width, height
    short, long_ = min(width, height), max(width, height)
    s = max(MULTIPLE, int(round(scale / MULTIPLE)) * MULTIPLE)
    l = max(MULTIPLE, int(round(scale * long_ / short / MULTIPLE)) * MULTIPLE)
    return (l, s) if width >= height else (s, l)


def fit_video(video: Video, width: int, height: int, max_frames: int) -> Video:
    """Resize every frame and keep at most max_frames frames."""
    frames = video.frames[:max_frames]
    if (video.width, video.height) != (width, height):
        frames = np.stack([np.asarray(fit_image(Image.fromarray(f), width, height)) for f in frames])
    return Video(frames, fps=video.fps, metadata=dict(video.metadata))


# ----- outputs --------------------------------------------------------------------------------
def write_outputs(video: Video, folder: Path) -> None:
    """video.mp4, thumbnail.webp (the middle frame) and spritesheet.jpg (up to 10 frames in a row)."""
    folder.mkdir(parents=True, exist_ok=True)
    thumb = Image.fromarray(video.frames[video.num_frames // 2])
    atomic_write(folder / THUMBNAIL, lambda p: thumb.save(p, format="WEBP", quality=90))
    idx = np.linspace(0, video.num_frames - 1, num=min(10, video.num_frames)).round().astype(int)
    sheet = Image.new("RGB", (video.width * len(idx), video.height))
    for k, i in enumerate(idx):
        sheet.paste(Image.fromarray(video.frames[i]), (k * video.width, 0))
    atomic_write(folder / SPRITESHEET, lambda p: sheet.save(p, format="JPEG", quality=90))
    video.save(folder / VIDEO)   # last: its presence means the outputs are complete
