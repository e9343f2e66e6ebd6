"""The HTTP API (FastAPI): JSON routes under /api, the public verification routes under /v."""
