"""HTTP API and web page (the ``[web]`` extra: FastAPI and uvicorn)."""

from .app import Limits, create_app

__all__ = ["Limits", "create_app"]
