import subprocess

import numpy as np
import pytest
from PIL import Image

from kinema.video import Video, VideoError


def _clip(t=9, h=48, w=64):
    rng = np.random.default_rng(0)
    base = np.zeros((t, h, w, 3), np.uint8)
    base[:] = (20, 28, 70)
    for i in range(t):
        base[i, 10:30, 5 + 3 * i:25 + 3 * i] = (220, 40, 40)
    return Video(base, fps=12, metadata={"prompt": "a red square"}), rng


def test_mp4_round_trip_keeps_frames_fps_and_metadata(tmp_path):
    v, _ = _clip()
    path = v.save(tmp_path / "a.mp4")
    back = Video.read(path)
    assert back.frames.shape == v.frames.shape
    assert back.fps == pytest.approx(12)
    assert back.metadata["prompt"] == "a red square"
    assert np.abs(back.frames.astype(int) - v.frames).mean() < 3.0


@pytest.mark.parametrize("w,h", [(63, 47), (33, 32), (128, 71)])
def test_odd_sizes_are_padded_then_cropped_back(tmp_path, w, h):
    v = Video(np.full((5, h, w, 3), 128, np.uint8), fps=8)
    back = Video.read(v.save(tmp_path / "odd.mp4"))
    assert back.size == (w, h)


def test_mp4_is_h264_yuv420p(tmp_path):
    import av

    v, _ = _clip()
    path = v.save(tmp_path / "a.mp4")
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264"
        assert s.codec_context.pix_fmt == "yuv420p"


def test_gif_png_and_frame_folder(tmp_path):
    v, _ = _clip(t=4)
    g = Video.read(v.save(tmp_path / "a.gif"))
    assert g.num_frames == 4 and g.size == v.size
    assert g.fps == pytest.approx(12, rel=0.1)
    still = Video(v.frames[:1])
    png = Video.read(still.save(tmp_path / "one.png"))
    assert np.array_equal(png.frames, still.frames)
    folder = Video.read(v.save(tmp_path / "frames"))
    assert np.array_equal(folder.frames, v.frames)
    with pytest.raises(VideoError, match="one frame"):
        v.save(tmp_path / "many.png")


def test_contact_sheet_has_one_cell_per_sampled_frame(tmp_path):
    v, _ = _clip(t=9)
    sheet = v.contact_sheet(tmp_path / "sheet.png", columns=3, max_frames=6)
    assert (tmp_path / "sheet.png").exists()
    assert sheet.width >= 3 * 64 and sheet.height >= 2 * 48
    assert Image.open(tmp_path / "sheet.png").size == sheet.size


def test_bad_files_give_clear_errors(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoError, match="empty"):
        Video.read(empty)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(VideoError, match="not a readable video"):
        Video.read(junk)
    with pytest.raises(VideoError, match="no such file"):
        Video.read(tmp_path / "missing.mp4")
    with pytest.raises(VideoError, match="shape"):
        Video(np.zeros((4, 4)))


def test_failed_write_leaves_no_partial_file(tmp_path):
    v, _ = _clip()
    with pytest.raises(VideoError):
        v.save(tmp_path / "clip.xyz")
    assert list(tmp_path.iterdir()) == []


def test_ffprobe_free_player_check_decodes_every_frame(tmp_path):
    # Any player must open it: decode with PyAV's demuxer from bytes, counting frames.
    import av

    v, _ = _clip(t=13)
    path = v.save(tmp_path / "p.mp4")
    with av.open(str(path)) as c:
        n = sum(1 for _ in c.decode(video=0))
    assert n == 13


def test_saved_files_get_the_usual_permissions(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        Video(np.zeros((5, 16, 16, 3), np.uint8), fps=12).save(tmp_path / "clip.mp4")
    finally:
        os.umask(old)
    assert (tmp_path / "clip.mp4").stat().st_mode & 0o777 == 0o644
