"""Wire shapes: OpenAI-style errors, the Video object, list pages, request field parsing."""

from __future__ import annotations

import math
import re
from typing import Any

from .store import loads


class ApiError(Exception):
    """An error answered as ``{"error": {"message", "type", "param", "code"}}`` with `status`."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type or _default_type(status)
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def _default_type(status: int) -> str:
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def bad_request(message: str, param: str | None = None, code: str | None = "invalid_value") -> ApiError:
    return ApiError(400, message, param=param, code=code)


def not_found(what: str, ident: str, param: str | None = None) -> ApiError:
    return ApiError(404, f"No {what} found with id '{ident}'.", param=param, code="not_found")


def _ts(value: float | None) -> int | None:
    return None if value is None else int(value)


def video_object(row) -> dict[str, Any]:
    """The OpenAI Video object for a store row, plus Kinema's own details under `kinema`."""
    params = loads(row.params)
    result = loads(row.result)
    error = None
    if row.status == "failed":
        error = {"code": row.error_code or "generation_failed", "message": row.error_message or "generation failed"}
    kinema: dict[str, Any] = {
        "width": result.get("width", params.get("width")),
        "height": result.get("height", params.get("height")),
        "num_frames": result.get("num_frames", params.get("num_frames")),
        "fps": result.get("fps", params.get("fps")),
        "seed": params.get("seed"),
        "steps": result.get("steps", params.get("steps")),
        "mode": params.get("mode") or ("image" if params.get("image") else "text"),
        "attempts": row.attempts,
    }
    if params.get("effective_prompt") and params.get("effective_prompt") != row.prompt:
        kinema["effective_prompt"] = params["effective_prompt"]
    if params.get("characters"):
        kinema["characters"] = params["characters"]
    if row.purged:
        kinema["expired"] = True
    return {
        "id": row.id,
        "object": "video",
        "created_at": _ts(row.created_at),
        "completed_at": _ts(row.completed_at),
        "expires_at": _ts(row.expires_at),
        "status": row.status,
        "model": row.model,
        "progress": int(row.progress or 0),
        "prompt": row.prompt,
        "remixed_from_video_id": row.remixed_from,
        "seconds": row.seconds,
        "size": row.size,
        "error": error,
        "kinema": kinema,
    }


def character_object(row) -> dict[str, Any]:
    facts = loads(row.facts)
    return {
        "id": row.id,
        "object": "video.character",
        "created_at": _ts(row.created_at),
        "name": row.name,
        "look": row.look,
        "facts": {k: v for k, v in facts.items() if k != "objects"} | {
            "objects": [{k: v for k, v in o.items() if k != "track"} for o in facts.get("objects", [])
                        if isinstance(o, dict)]},
    }


def list_page(rows, has_more: bool) -> dict[str, Any]:
    data = [video_object(r) for r in rows]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


# ----- request fields -------------------------------------------------------------------------
_BRACKET = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])+)$")


def nest_form_key(fields: dict[str, Any], key: str, value: Any) -> None:
    """Put 'video[id]'-style keys (how the openai client sends nested objects as form fields)
    into nested dicts: fields['video'] = {'id': value}."""
    m = _BRACKET.match(key)
    if not m:
        fields[key] = value
        return
    parts = [m.group(1)] + re.findall(r"\[([^\[\]]*)\]", m.group(2))
    node = fields
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            node[part] = nxt
        node = nxt
    node[parts[-1]] = value


def opt_str(fields: dict, name: str, max_len: int = 200) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise bad_request(f"'{name}' must be a string", name)
    if len(value) > max_len:
        raise bad_request(f"'{name}' is too long (at most {max_len} characters)", name)
    return value


def opt_int(fields: dict, name: str, lo: int, hi: int) -> int | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError
            value = int(value)
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise bad_request(f"'{name}' must be a whole number, got {value!r}", name) from None
    if not lo <= number <= hi:
        raise bad_request(f"'{name}' must be between {lo} and {hi}, got {number}", name)
    return number


def opt_float(fields: dict, name: str, lo: float, hi: float) -> float | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(str(value).strip())
    except (TypeError, ValueError):
        raise bad_request(f"'{name}' must be a number, got {value!r}", name) from None
    if not (math.isfinite(number) and lo <= number <= hi):
        raise bad_request(f"'{name}' must be between {lo} and {hi}, got {value!r}", name)
    return number


def opt_bool(fields: dict, name: str) -> bool | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise bad_request(f"'{name}' must be true or false, got {value!r}", name)
