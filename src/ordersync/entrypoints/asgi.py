"""The ASGI entry point for uvicorn workers: `ordersync.entrypoints.asgi:create`."""

from __future__ import annotations

from fastapi import FastAPI

from ..api.app import create_app
from ..config import load_settings
from ..ui.app import require_secret_key


def create() -> FastAPI:
    settings = load_settings()
    require_secret_key(settings)
    return create_app(settings)
