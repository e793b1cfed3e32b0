"""Settings shared by the HTTP app, the job store and the workers (filled from `kinema serve`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .auth import KeyRing


@dataclass
class ServerConfig:
    data_dir: Path = Path("kinema-data")
    database_url: str | None = None          # None: sqlite file DATA/kinema.db (WAL)
    model_path: str | None = None            # None: the shipped default model
    model_name: str | None = None            # None: "kinema-tiny" or the --model folder's name
    keys: KeyRing = field(default_factory=KeyRing)
    # generation
    scale: int = 128                         # shorter side OpenAI sizes are scaled to
    max_pixels: int = 512 * 512              # per frame, for the model's own sizes
    openai_seconds_scale: float = 0.5        # OpenAI "4"/"8"/"12" -> seconds rendered
    fps: float = 12.0
    steps: int | None = None                 # None: the pipeline's default
    max_steps: int = 100
    max_frames: int = 1 + 4 * 64
    # jobs
    lease_seconds: float = 30.0
    max_attempts: int = 3                    # a job whose worker died this often fails
    poll_after_ms: int = 1000
    retention_seconds: float = 24 * 3600.0   # expires_at = completed_at + this; 0: never
    cleanup_interval: float = 60.0
    # limits
    max_prompt_chars: int = 4000
    max_upload_bytes: int = 50 * 1024 * 1024
    max_image_pixels: int = 4096 * 4096
    max_active_jobs: int = 4                 # per key, queued + in_progress

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'kinema.db').resolve()}"

    @property
    def served_model(self) -> str:
        if self.model_name:
            return self.model_name
        if self.model_path:
            name = Path(self.model_path).resolve().name
            return name or "kinema"
        return "kinema-tiny"

    def videos_dir(self) -> Path:
        return self.data_dir / "videos"

    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    def characters_dir(self) -> Path:
        return self.data_dir / "characters"
