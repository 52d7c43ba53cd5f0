"""``/ui``: the operator's dashboard, one HTML page and its script (``services/api/ui``).

The page and its files are public (they hold no data); everything they show comes from the JSON
API with the key the operator types in, so the dashboard sees exactly what that key may see.
Nothing is loaded from elsewhere: it works on a network without internet access.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

UI_DIR = Path(__file__).resolve().parent.parent / "ui"
# The script and styles are the page's own; thumbnails are blob: URLs; a bucket's presigned
# image URL (a redirect) is fetched over https. Printify's mockups (the review page) are the
# vendor's images on its CDN, over https: data shown, never code (script-src stays 'self').
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' blob: data: https:; connect-src 'self' https:; frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)


@router.get("/ui")
async def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/jobs", status_code=307)


@router.get("/ui/{page:path}")
async def ui_page(page: str) -> FileResponse:
    """Every dashboard path gets the same page; its script draws the one asked for."""
    return FileResponse(
        UI_DIR / "index.html",
        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"},
    )


def add_ui(app: FastAPI) -> None:
    """The static files first (``/ui/static``), then the pages."""
    app.mount("/ui/static", StaticFiles(directory=UI_DIR), name="ui-static")
    app.include_router(router)
