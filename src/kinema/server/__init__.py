"""Kinema's service: OpenAI's Videos API, a job store, workers and a web page.

- `app`        the FastAPI app (endpoints, errors, uploads, the page at /)
- `store`      jobs and characters in SQL (SQLite WAL by default), atomic claims with leases
- `worker`     the loop that claims jobs and runs the pipeline; expiry clean-up
- `auth`       API keys and per-key limits
- `sizes`      OpenAI size / seconds / model values -> what the model renders
- `characters` reference clips -> looks kept across shots
- `media`      bounded decoding of uploads; thumbnails and sprite sheets
- `schemas`    the wire shapes (Video object, list page, errors)

Run it with `kinema serve` (and optionally `kinema worker`); see `kinema.commands.serve`.
"""
