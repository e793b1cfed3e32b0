"""Writing files so that no half-written one is ever visible, with the permissions users expect.

Writers that go through a temporary file (`tempfile.mkstemp`, safetensors' `save_file`) create
it 0600; a saved video or model must instead get what the umask gives any new file (usually 0644).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def give_usual_permissions(path: str | os.PathLike) -> None:
    """Set a file, or a folder and everything in it, to the umask's permissions for new files
    (0666) and folders (0777). Best effort: a file system that refuses chmod keeps what it has,
    because permissions are not worth losing a saved file over."""
    mask = _umask()
    path = Path(path)
    if path.is_file():
        _chmod(path, 0o666 & ~mask)
        return
    _chmod(path, 0o777 & ~mask)
    for root, dirs, files in os.walk(path):
        for name in dirs:
            _chmod(os.path.join(root, name), 0o777 & ~mask)
        for name in files:
            _chmod(os.path.join(root, name), 0o666 & ~mask)


def _chmod(path, mode: int) -> None:
    try:
        os.chmod(path, mode)
    except OSError:
        pass


def atomic_write(path: Path, write) -> None:
    """Call write(tmp_path), then rename into `path`; no half-written file is ever visible."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        give_usual_permissions(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
