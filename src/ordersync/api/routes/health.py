"""/healthz: the process is up and the database answers."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from ..decimal_json import DecimalRoute
from ..deps import Db

router = APIRouter(tags=["health"], route_class=DecimalRoute)


@router.get(
    "/healthz",
    summary="Liveness and database reachability (no token needed)",
    responses={
        503: {
            "description": "the database does not answer",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["status", "error"],
                        "properties": {"status": {"type": "string"}, "error": {"type": "string"}},
                    }
                }
            },
        }
    },
)
async def healthz(db: Db) -> JSONResponse:
    try:
        async with db.connect(autocommit=True) as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        return JSONResponse({"status": "unavailable", "error": type(exc).__name__}, status_code=503)
    return JSONResponse({"status": "ok", "database": db.engine.dialect.name})
