"""The ASGI entry point for uvicorn workers: `ordersync.entrypoints.asgi:create`."""

from __future__ import annotations

from fastapi import FastAPI

from ..api.app import create_app
from ..config import load_settings


def create() -> FastAPI:
    return create_app(load_settings())
