"""Human API docs at /docs: Swagger UI 5 (OpenAPI 3.1) with assets served by the server itself (no CDN)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from aiohttp import web

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Switchboard API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script src="/docs/static/swagger-ui-standalone-preset.js"></script>
<script src="/docs/init.js"></script>
</body></html>
"""
_INIT = """window.ui = SwaggerUIBundle({url: "/api/v1/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: "StandaloneLayout"});
"""


def static_dir() -> Path:
    return Path(str(resources.files("swagger_ui") / "static"))


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=_PAGE, content_type="text/html")


async def docs_init(request: web.Request) -> web.Response:
    return web.Response(text=_INIT, content_type="application/javascript")


def install(app: web.Application) -> None:
    app.router.add_get("/docs", docs_page)
    app.router.add_get("/docs/init.js", docs_init)
    app.router.add_static("/docs/static", static_dir(), show_index=False)
