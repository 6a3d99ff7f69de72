"""The web page: static files from ``service/web`` under ``/app/``, and ``/``
pointing there. They hold no data, so they need no API key (the page asks for
it and sends it with each API call, like any other client)."""

from __future__ import annotations

from pathlib import Path

from litestar import get
from litestar.datastructures import CacheControlHeader
from litestar.response import Redirect
from litestar.static_files import create_static_files_router

WEB_FOLDER = Path(__file__).resolve().parent / "web"
PUBLIC = {"public": True}  # read by the API key guard


@get("/", include_in_schema=False, opt=PUBLIC)
async def home() -> Redirect:
    return Redirect(path="/app/")


def routes() -> list:
    static = create_static_files_router(path="/app", directories=[WEB_FOLDER], html_mode=True, name="web", opt=PUBLIC,
                                        cache_control=CacheControlHeader(no_cache=True))  # revalidated: a new version shows at once
    return [home, static]
