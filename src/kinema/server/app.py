"""The HTTP service: OpenAI's Videos API over Kinema, and a web page at `/`.

An unchanged ``openai`` client works against it::

    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="sk-...")
    video = client.videos.create_and_poll(prompt="a large red circle moves right", seconds="4")
    client.videos.download_content(video.id).write_to_file("shot.mp4")

Endpoints (all under /v1, all scoped to the caller's key):

- ``POST /videos`` (JSON or multipart; ``input_reference`` image file or data URL = image->video)
- ``GET /videos`` (``after``, ``limit`` 1..100, ``order`` asc|desc), ``GET /videos/{id}``,
  ``DELETE /videos/{id}``
- ``GET /videos/{id}/content?variant=video|thumbnail|spritesheet`` (MP4, WebP, JPEG)
- ``POST /videos/{id}/remix`` (new prompt, same settings, an edit of the source clip)
- ``POST /videos/edits`` and ``POST /videos/extensions`` (``video`` = ``{"id": ...}`` or a file)
- ``POST /videos/characters``, ``GET /videos/characters/{id}``

Besides OpenAI's fields, requests may carry Kinema's own: ``seed``, ``steps``, ``guidance``,
``negative_prompt``, ``fps``, ``num_frames``, ``strength`` (edits), ``loop`` and ``mode``
(``text``, ``image``, ``loop``). With the openai client, pass them in ``extra_body``. Size,
seconds and model values are explained in `kinema.server.sizes`. Errors are OpenAI-shaped:
``{"error": {"message", "type", "param", "code"}}``. While a job is queued or running, its
responses carry ``openai-poll-after-ms``, which the client's ``poll`` follows.
"""

from __future__ import annotations

import json
import secrets
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import media
from .auth import Principal, bearer_token
from .characters import CharacterError, analyze_clip, substitute
from .config import ServerConfig
from .schemas import (ApiError, bad_request, character_object, list_page, nest_form_key, not_found, opt_bool,
                      opt_float, opt_int, opt_str, video_object)
from .sizes import OPENAI_SECONDS, OPENAI_SIZES, ModelNames, SizeError, frames_for, parse_seconds, parse_size
from .store import Store, loads

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_SEED = 2**63 - 1


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


class _BodyTooLarge(ApiError):
    def __init__(self, limit: int):
        super().__init__(413, f"Request body is larger than this server's limit of {limit} bytes.",
                         code="request_too_large", param=None)


class BodyLimit:
    """ASGI middleware: 413 for a request body over the limit (by Content-Length, before reading
    it, or while it streams in). A declared over-size body is drained first, so the client reads
    the 413 instead of a reset connection."""

    DRAIN_LIMIT = 256 * 1024 * 1024

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = None
        if length is not None and length > self.limit:
            if length <= self.DRAIN_LIMIT:
                more = True
                while more:
                    message = await receive()
                    if message["type"] != "http.request":
                        break
                    more = message.get("more_body", False)
            err = _BodyTooLarge(self.limit)
            response = JSONResponse(err.body(), status_code=413,
                                    headers={"connection": "close"} if length > self.DRAIN_LIMIT else None)
            return await response(scope, receive, send)
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge(self.limit)
            return message

        return await self.app(scope, limited_receive, send)


def create_app(config: ServerConfig, store: Store | None = None, wake: threading.Event | None = None) -> FastAPI:
    """The FastAPI app. Workers are not started here (see `kinema.commands.serve`); `wake` is set
    whenever a job is queued, so in-process workers start at once."""
    store = store or Store(config.db_url, max_attempts=config.max_attempts)
    for d in (config.videos_dir(), config.uploads_dir(), config.characters_dir()):
        d.mkdir(parents=True, exist_ok=True)
    models = ModelNames(config.served_model)
    create_lock = threading.Lock()

    app = FastAPI(title="Kinema", version="0.1.0", docs_url="/docs", redoc_url=None)
    app.state.config = config
    app.state.store = store
    app.add_middleware(BodyLimit, limit=config.max_upload_bytes)

    # ----- errors -----------------------------------------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError):
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers or None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = "Unknown URL; see /docs for this server's endpoints."
        err = ApiError(exc.status_code, message, code=code)
        return JSONResponse(err.body(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", []) if p not in ("body", "query", "path")]
        err = bad_request(f"{'.'.join(loc) or 'request'}: {first.get('msg', 'invalid')}", loc[-1] if loc else None)
        return JSONResponse(err.body(), status_code=400)

    @app.exception_handler(Exception)
    async def _server_error(_request: Request, exc: Exception):
        err = ApiError(500, f"The server had an error while processing your request ({type(exc).__name__}).",
                       code="server_error")
        return JSONResponse(err.body(), status_code=500)

    # ----- helpers -----------------------------------------------------------------------------
    def principal(request: Request) -> Principal:
        p = config.keys.lookup(bearer_token(request.headers.get("authorization")))
        if p is None:
            raise ApiError(401, "Incorrect API key provided. Send 'Authorization: Bearer KEY' with a key this "
                                "server knows.", code="invalid_api_key")
        return p

    async def read_fields(request: Request) -> tuple[dict[str, Any], dict[str, UploadFile]]:
        ctype = request.headers.get("content-type", "").lower()
        fields: dict[str, Any] = {}
        files: dict[str, UploadFile] = {}
        if ctype.startswith("multipart/form-data") or ctype.startswith("application/x-www-form-urlencoded"):
            try:
                form = await request.form(max_files=8, max_fields=200, max_part_size=config.max_upload_bytes)
            except ApiError:
                raise
            except Exception as exc:
                raise bad_request(f"could not parse the form data ({getattr(exc, 'detail', exc)})") from None
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    files[key.split("[", 1)[0]] = value
                else:
                    nest_form_key(fields, key, value)
            return fields, files
        body = await request.body()
        if not body.strip():
            return fields, files
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise bad_request("request body is not valid JSON", code="invalid_json") from None
        if not isinstance(data, dict):
            raise bad_request("request body must be a JSON object", code="invalid_json")
        return data, files

    def get_prompt(fields: dict) -> str:
        prompt = fields.get("prompt")
        if prompt is None:
            raise bad_request("'prompt' is required", "prompt", code="missing_required_parameter")
        if not isinstance(prompt, str):
            raise bad_request("'prompt' must be a string", "prompt")
        if not prompt.strip():
            raise bad_request("'prompt' must not be empty", "prompt")
        if len(prompt) > config.max_prompt_chars:
            raise bad_request(f"'prompt' is {len(prompt)} characters long; this server allows at most "
                              f"{config.max_prompt_chars}", "prompt", code="prompt_too_long")
        return prompt

    def effective(owner: str, prompt: str) -> tuple[str, list[dict]]:
        chars = store.characters_of(owner)
        used = [c for c in chars if c.name and substitute(prompt, [(c.name, c.look)]) != prompt]
        if not used:
            return prompt, []
        return substitute(prompt, [(c.name, c.look) for c in used]), [{"id": c.id, "name": c.name} for c in used]

    def common_params(fields: dict) -> dict[str, Any]:
        seed = opt_int(fields, "seed", 0, MAX_SEED)
        return {
            "seed": secrets.randbelow(2**31) if seed is None else seed,
            "steps": opt_int(fields, "steps", 1, config.max_steps) or config.steps,
            "guidance": opt_float(fields, "guidance", 0.0, 100.0),
            "negative_prompt": opt_str(fields, "negative_prompt", config.max_prompt_chars),
        }

    def check_quota(p: Principal) -> None:
        limit = config.max_active_jobs if p.max_jobs is None else p.max_jobs
        active = store.count_active(p.owner)
        if active >= limit:
            raise ApiError(429, f"This key already has {active} videos queued or in progress (the limit is {limit}); "
                                "wait for one to finish.", code="too_many_active_jobs",
                           headers={"retry-after": "2"})

    def enqueue(p: Principal, video_id: str, prompt: str, model: str, seconds: str, size: str,
                params: dict, remixed_from: str | None = None) -> dict:
        params = {**params, "retention_seconds": config.retention_seconds}
        with create_lock:
            check_quota(p)
            store.insert_video({"id": video_id, "owner": p.owner, "status": "queued", "prompt": prompt,
                                "model": model, "seconds": seconds, "size": size, "params": params,
                                "remixed_from": remixed_from, "created_at": time.time()})
        obj = video_object(store.get_video(video_id))
        # The answer describes the job as created, even if a worker polling the queue took it already.
        obj.update(status="queued", progress=0)
        obj["kinema"]["attempts"] = 0
        if wake is not None:
            wake.set()
        return obj

    def video_response(obj: dict, status_code: int = 200) -> JSONResponse:
        headers = {}
        if obj["status"] in ("queued", "in_progress"):
            headers["openai-poll-after-ms"] = str(config.poll_after_ms)
        return JSONResponse(obj, status_code=status_code, headers=headers)

    def own_video(p: Principal, video_id: str, param: str | None = None):
        row = store.get_video(video_id, p.owner)
        if row is None:
            raise not_found("video", video_id, param)
        return row

    def sized(fn, *args):
        try:
            return fn(*args)
        except SizeError as exc:
            raise bad_request(str(exc), exc.param) from None

    def upload_dir(video_id: str) -> Path:
        d = config.uploads_dir() / video_id
        d.mkdir(parents=True, exist_ok=True)
        return d

    def copy_source(src_row, video_id: str, param: str) -> tuple[str, dict]:
        """Copy a completed video's MP4 into the new job's uploads (so it outlives the source)."""
        if src_row.status != "completed":
            raise bad_request(f"video '{src_row.id}' is {src_row.status}; only a completed video can be used",
                              param, code="video_not_ready")
        src = config.videos_dir() / src_row.id / media.VIDEO
        if src_row.purged or not src.exists():
            raise bad_request(f"video '{src_row.id}' has expired and its files are gone", param, code="video_expired")
        dest = upload_dir(video_id) / "source.mp4"
        shutil.copyfile(src, dest)
        return str(dest.relative_to(config.data_dir)), loads(src_row.result)

    async def source_clip(p: Principal, fields: dict, files: dict, video_id: str):
        """The clip an edit/extension works on: (relative path, width, height, frames, fps, size, seconds-as-real)."""
        upload = files.get("video")
        ref = fields.get("video")
        if upload is None and isinstance(ref, str) and ref.strip():
            ref = {"id": ref.strip()}
        if upload is not None:
            data = await upload.read()
            if not data:
                raise bad_request("the uploaded video is empty", "video", code="invalid_video")
            raw = upload_dir(video_id) / ("upload" + (Path(upload.filename or "").suffix.lower()[:8] or ".mp4"))
            raw.write_bytes(data)

            def prepare():
                clip = media.read_upload_video(raw, config.max_image_pixels, config.max_frames, "video")
                w, h = media.model_size_for(clip.width, clip.height, config.scale, config.max_pixels)
                clip = media.fit_video(clip, w, h, config.max_frames)
                dest = upload_dir(video_id) / "source.mp4"
                clip.save(dest)
                raw.unlink(missing_ok=True)
                return clip

            clip = await run_in_threadpool(prepare)
            return {"path": str((upload_dir(video_id) / "source.mp4").relative_to(config.data_dir)),
                    "width": clip.width, "height": clip.height, "num_frames": clip.num_frames, "fps": clip.fps,
                    "size": f"{clip.width}x{clip.height}", "seconds": None, "duration": clip.duration, "row": None}
        if isinstance(ref, dict) and isinstance(ref.get("id"), str):
            row = own_video(p, ref["id"], "video")
            path, result = copy_source(row, video_id, "video")
            params = loads(row.params)
            return {"path": path, "width": result.get("width", params.get("width")),
                    "height": result.get("height", params.get("height")),
                    "num_frames": result.get("num_frames", params.get("num_frames")),
                    "fps": result.get("fps", params.get("fps")), "size": row.size, "seconds": row.seconds,
                    "duration": result.get("duration"), "row": row}
        raise bad_request("'video' is required: a video file, or {\"id\": \"video_...\"} of a completed video",
                          "video", code="missing_required_parameter")

    # ----- pages ----------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/health", include_in_schema=False)
    async def health():
        return {"status": "ok", "model": config.served_model}

    @app.get("/v1/kinema/config")
    async def server_config():
        return {"model": config.served_model, "keys_required": config.keys.enabled,
                "openai_sizes": list(OPENAI_SIZES), "openai_seconds": list(OPENAI_SECONDS[:3]),
                "scale": config.scale, "fps": config.fps, "openai_seconds_scale": config.openai_seconds_scale,
                "max_prompt_chars": config.max_prompt_chars, "max_upload_bytes": config.max_upload_bytes,
                "sizes": {s: "{}x{}".format(*parse_size(s, config.scale, config.max_pixels)) for s in OPENAI_SIZES}}

    # ----- videos ----------------------------------------------------------------------------------
    @app.post("/v1/videos")
    async def create_video(request: Request):
        p = principal(request)
        fields, files = await read_fields(request)
        prompt = get_prompt(fields)
        model = sized(models.resolve, opt_str(fields, "model"))
        size_text = opt_str(fields, "size", 32)
        seconds_text = opt_str(fields, "seconds", 32)
        width, height = sized(parse_size, size_text, config.scale, config.max_pixels)
        secs = sized(parse_seconds, seconds_text, config.openai_seconds_scale)
        fps = opt_float(fields, "fps", 1.0, 60.0) or config.fps
        num_frames = opt_int(fields, "num_frames", 1, config.max_frames) or frames_for(secs, fps)
        if num_frames > config.max_frames:
            raise bad_request(f"{secs:g} s at {fps:g} fps is {num_frames} frames; this server renders at most "
                              f"{config.max_frames}", "seconds", code="too_long")
        mode = (opt_str(fields, "mode", 32) or "").strip().lower() or None
        loop = opt_bool(fields, "loop") or mode == "loop"
        if mode not in (None, "text", "image", "loop", "t2v", "i2v"):
            raise bad_request(f"mode {mode!r} is not made by POST /v1/videos; use text, image or loop here, and "
                              "POST /v1/videos/extensions or /v1/videos/edits for extend and edit", "mode")
        video_id = new_id("video")
        params = {**common_params(fields), "width": width, "height": height, "fps": fps,
                  "num_frames": num_frames, "loop": bool(loop), "mode": None}
        params["effective_prompt"], params["characters"] = effective(p.owner, prompt)

        ref = files.get("input_reference")
        ref_field = fields.get("input_reference")
        image_bytes = None
        if ref is not None:
            image_bytes = await ref.read()
        elif isinstance(ref_field, dict):
            if ref_field.get("image_url"):
                image_bytes = media.decode_data_url(str(ref_field["image_url"]), "input_reference")
            elif ref_field.get("file_id"):
                raise bad_request("input_reference.file_id is not supported here (there is no Files API); upload "
                                  "the image as input_reference or send a data URL as image_url", "input_reference")
        elif isinstance(ref_field, str) and ref_field.startswith("data:"):
            image_bytes = media.decode_data_url(ref_field, "input_reference")
        elif ref_field not in (None, ""):
            raise bad_request("input_reference must be an image file or {\"image_url\": \"data:...\"}",
                              "input_reference")
        if mode in ("image", "i2v") and image_bytes is None:
            raise bad_request("mode 'image' needs an input_reference image", "input_reference",
                              code="missing_required_parameter")
        if image_bytes is not None:
            if not image_bytes:
                raise bad_request("input_reference is empty", "input_reference", code="invalid_image")
            if num_frames < 2 and not loop:
                raise bad_request("image->video needs at least 2 frames", "seconds")

            def prepare_image():
                img = media.open_image(image_bytes, config.max_image_pixels, "input_reference")
                img = media.fit_image(img, width, height)
                dest = upload_dir(video_id) / "image.png"
                media.atomic_write(dest, lambda t: img.save(t, format="PNG"))
                return str(dest.relative_to(config.data_dir))

            try:
                params["image"] = await run_in_threadpool(prepare_image)
            except ApiError:
                shutil.rmtree(config.uploads_dir() / video_id, ignore_errors=True)
                raise
        try:
            obj = enqueue(p, video_id, prompt, model, seconds_text or "4", size_text or "720x1280", params)
        except ApiError:
            shutil.rmtree(config.uploads_dir() / video_id, ignore_errors=True)
            raise
        return video_response(obj)

    @app.get("/v1/videos")
    async def list_videos(request: Request):
        p = principal(request)
        q = request.query_params
        limit = opt_int(dict(q), "limit", 1, 100) or 20
        order = q.get("order", "desc")
        if order not in ("asc", "desc"):
            raise bad_request("'order' must be 'asc' or 'desc'", "order")
        page = store.list_videos(p.owner, q.get("after") or None, limit, order)
        if page is None:
            raise bad_request(f"'after' names no video of yours: {q.get('after')!r}", "after", code="not_found")
        return JSONResponse(list_page(*page))

    @app.get("/v1/videos/characters/{character_id}")
    async def get_character(character_id: str, request: Request):
        p = principal(request)
        row = store.get_character(character_id, p.owner)
        if row is None:
            raise not_found("character", character_id)
        return JSONResponse(character_object(row))

    @app.get("/v1/videos/{video_id}")
    async def get_video(video_id: str, request: Request):
        p = principal(request)
        return video_response(video_object(own_video(p, video_id)))

    @app.delete("/v1/videos/{video_id}")
    async def delete_video(video_id: str, request: Request):
        p = principal(request)
        own_video(p, video_id)
        if not store.delete_video(video_id, p.owner):
            raise not_found("video", video_id)
        shutil.rmtree(config.videos_dir() / video_id, ignore_errors=True)
        shutil.rmtree(config.uploads_dir() / video_id, ignore_errors=True)
        return JSONResponse({"id": video_id, "object": "video.deleted", "deleted": True})

    @app.get("/v1/videos/{video_id}/content")
    async def video_content(video_id: str, request: Request):
        p = principal(request)
        variant = request.query_params.get("variant", "video")
        if variant not in media.FILES:
            raise bad_request("'variant' must be video, thumbnail or spritesheet", "variant")
        row = own_video(p, video_id)
        if row.status != "completed":
            raise bad_request(f"video '{video_id}' is {row.status}; content is available once it is completed",
                              "video_id", code="video_not_ready")
        path = config.videos_dir() / video_id / media.FILES[variant]
        if row.purged or not path.exists():
            raise ApiError(404, f"the files of video '{video_id}' have expired", code="video_expired")
        ext = path.suffix
        return FileResponse(path, media_type=media.CONTENT_TYPES[variant], filename=f"{video_id}{ext}",
                            content_disposition_type="inline")

    @app.post("/v1/videos/{video_id}/remix")
    async def remix_video(video_id: str, request: Request):
        p = principal(request)
        fields, _files = await read_fields(request)
        prompt = get_prompt(fields)
        src = own_video(p, video_id)
        new = new_id("video")
        try:
            path, result = copy_source(src, new, "video_id")
            params = loads(src.params)
            params.pop("image", None)
            params.update({"mode": "edit", "video": path, "loop": False,
                           "num_frames": result.get("num_frames", params.get("num_frames")),
                           "width": result.get("width", params.get("width")),
                           "height": result.get("height", params.get("height"))})
            strength = opt_float(fields, "strength", 0.01, 1.0)
            if strength is not None:
                params["strength"] = strength
            seed = opt_int(fields, "seed", 0, MAX_SEED)
            if seed is not None:
                params["seed"] = seed
            params["effective_prompt"], params["characters"] = effective(p.owner, prompt)
            obj = enqueue(p, new, prompt, src.model, src.seconds, src.size, params, remixed_from=src.id)
        except BaseException:
            shutil.rmtree(config.uploads_dir() / new, ignore_errors=True)
            raise
        return video_response(obj)

    async def derived(request: Request, mode: str):
        p = principal(request)
        fields, files = await read_fields(request)
        prompt = get_prompt(fields)
        new = new_id("video")
        try:
            base = common_params(fields)
            ext_seconds = None
            if mode == "extend":
                ext_seconds = opt_str(fields, "seconds", 32)
                if ext_seconds is None:
                    raise bad_request("'seconds' is required: the length of the new segment", "seconds",
                                      code="missing_required_parameter")
                secs = sized(parse_seconds, ext_seconds, config.openai_seconds_scale)
            src = await source_clip(p, fields, files, new)
            fps = float(src["fps"] or config.fps)
            params = {**base, "width": src["width"], "height": src["height"], "fps": fps, "video": src["path"],
                      "mode": mode, "loop": False}
            if mode == "extend":
                backward = (opt_str(fields, "direction", 16) or "forward").lower() in ("backward", "backwards")
                params["mode"] = "extend_backward" if backward else "extend"
                params["num_frames"] = opt_int(fields, "num_frames", 1, config.max_frames) or frames_for(secs, fps)
                if params["num_frames"] + int(src["num_frames"]) > config.max_frames:
                    raise bad_request(f"the extended clip would have {params['num_frames'] + int(src['num_frames'])} "
                                      f"frames; this server renders at most {config.max_frames}", "seconds",
                                      code="too_long")
                seconds_out = _total_seconds(src, ext_seconds, config)
            else:
                params["num_frames"] = int(src["num_frames"])
                strength = opt_float(fields, "strength", 0.01, 1.0)
                if strength is not None:
                    params["strength"] = strength
                seconds_out = src["seconds"] or _fmt(src["duration"] or params["num_frames"] / fps)
            params["effective_prompt"], params["characters"] = effective(p.owner, prompt)
            model = src["row"].model if src["row"] is not None else config.served_model
            obj = enqueue(p, new, prompt, model, seconds_out, src["size"], params,
                          remixed_from=src["row"].id if src["row"] is not None else None)
        except BaseException:
            shutil.rmtree(config.uploads_dir() / new, ignore_errors=True)
            raise
        return video_response(obj)

    @app.post("/v1/videos/edits")
    async def edit_video(request: Request):
        return await derived(request, "edit")

    @app.post("/v1/videos/extensions")
    async def extend_video(request: Request):
        return await derived(request, "extend")

    # ----- characters ----------------------------------------------------------------------------
    @app.post("/v1/videos/characters")
    async def create_character(request: Request):
        p = principal(request)
        fields, files = await read_fields(request)
        name = opt_str(fields, "name", 100)
        if not name or not name.strip():
            raise bad_request("'name' is required", "name", code="missing_required_parameter")
        name = name.strip()
        upload = files.get("video")
        if upload is None:
            raise bad_request("'video' (a reference clip file) is required", "video", code="missing_required_parameter")
        data = await upload.read()
        if not data:
            raise bad_request("the uploaded video is empty", "video", code="invalid_video")
        char_id = new_id("char")
        folder = config.characters_dir() / char_id
        folder.mkdir(parents=True, exist_ok=True)
        raw = folder / ("reference" + (Path(upload.filename or "").suffix.lower()[:8] or ".mp4"))
        raw.write_bytes(data)

        def analyse():
            clip = media.read_upload_video(raw, config.max_image_pixels, config.max_frames, "video")
            return analyze_clip(clip)

        try:
            facts, look = await run_in_threadpool(analyse)
        except CharacterError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise bad_request(str(exc), "video", code="no_character") from None
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        store.insert_character({"id": char_id, "owner": p.owner, "name": name, "look": look, "facts": facts,
                                "created_at": time.time()})
        return JSONResponse(character_object(store.get_character(char_id, p.owner)))

    return app


def _fmt(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:.2f}".rstrip("0").rstrip(".")


def _total_seconds(src: dict, ext_seconds: str, config: ServerConfig) -> str:
    """`seconds` of an extension: the stitched total, in the units the request used."""
    ext = float(ext_seconds)
    if src["seconds"] is not None:
        try:
            return _fmt(float(src["seconds"]) + ext)
        except ValueError:
            pass
    real = float(src["duration"] or 0.0)
    if ext_seconds.strip() in OPENAI_SECONDS and config.openai_seconds_scale > 0:
        real = real / config.openai_seconds_scale
    return _fmt(real + ext)

