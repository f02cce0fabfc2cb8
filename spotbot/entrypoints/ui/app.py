"""The web app: search gallery, jobs, review queue. Server-rendered HTML, a little vanilla JS, JSON for decisions.

Safe by construction: Jinja2 escapes every value (OCR text and file names included); the CSP allows
scripts from this server's /static only, so even escaped-but-misplaced text cannot run; thumbnails
are addressed by record id and resolved through the index; decisions are JSON POSTs (a form on another
site cannot send them), and the Host header must be this server's (no DNS rebinding).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from spotbot.domain import BadInputError, NotFoundError, UnavailableError
import spotbot.entrypoints.ui.views as views
from spotbot.entrypoints.ui.backends import UiBackend
from spotbot.entrypoints.ui.thumbnails import ThumbnailCache
from spotbot.ports import SearchQuery
from spotbot.services.decoding import AssetError

HERE = Path(__file__).parent
PAGE_SIZE = 24
QUEUE_SIZE = 20
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals.update(
    highlight=views.highlight, boxes=views.boxes, asset_name=views.asset_name, boxes_extent=views.boxes_extent
)


def create_app(backend: UiBackend, thumbs: ThumbnailCache, reviewer: str, hosts: list[str], bots: list[str]) -> Starlette:
    app = Starlette(
        routes=[
            Route("/", lambda request: RedirectResponse("/search")),
            Route("/search", search_page),
            Route("/jobs", jobs_page),
            Route("/jobs/{job_id}", job_page),
            Route("/review", review_page),
            Route("/thumb/{rid}", thumbnail),
            Route("/api/jobs", jobs_json),
            Route("/api/reviews/{rid}", review_json, methods=["GET", "POST"]),
            Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        ],
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts), Middleware(SecurityHeaders)],
        exception_handlers={BadInputError: _bad_input, NotFoundError: _not_found, UnavailableError: _unavailable},
    )
    app.state.backend = backend
    app.state.thumbs = thumbs
    app.state.reviewer = reviewer
    app.state.bots = bots

    return app


class SecurityHeaders:
    """Adds the CSP and friends to every answer (pure ASGI: streams pass through untouched)."""

    HEADERS = [
        (b"content-security-policy", CSP.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    ]

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + self.HEADERS
            await send(message)

        await self.app(scope, receive, with_headers)


def _backend(request: Request) -> UiBackend:
    return request.app.state.backend


def _page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    base = {"where": _backend(request).where, "bots": request.app.state.bots, "active": name.split(".")[0]}
    return templates.TemplateResponse(request, name, base | context, status_code=status)


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


async def _bad_input(request: Request, error: Exception) -> Response:
    if _wants_json(request):
        return JSONResponse({"error": str(error)}, status_code=400)
    return _page(request, "error.html", {"message": str(error)}, 400)


async def _not_found(request: Request, error: Exception) -> Response:
    if _wants_json(request):
        return JSONResponse({"error": str(error)}, status_code=404)
    return _page(request, "error.html", {"message": str(error)}, 404)


async def _unavailable(request: Request, error: Exception) -> Response:
    if _wants_json(request):
        return JSONResponse({"error": str(error)}, status_code=503)
    return _page(request, "error.html", {"message": str(error)}, 503)


def _param(request: Request, name: str, max_chars: int = 500) -> str | None:
    value = (request.query_params.get(name) or "").strip()
    if len(value) > max_chars:
        raise BadInputError(f"{name} is longer than {max_chars} characters")
    return value or None


def search_page(request: Request) -> Response:
    query = SearchQuery(
        text=_param(request, "q"),
        bot=_param(request, "bot"),
        label=_param(request, "label"),
        job_id=_param(request, "job"),
        limit=PAGE_SIZE,
    )
    cursor = _param(request, "after", 2000)
    hits, next_cursor = _backend(request).search(query, cursor)
    cards = [_card(request, hit.id, hit.record, hit.snippet) for hit in hits]
    next_params = {k: v for k, v in (("q", query.text), ("bot", query.bot), ("label", query.label), ("job", query.job_id)) if v}
    return _page(
        request,
        "search.html",
        {"query": query, "cards": cards, "terms": (query.text or "").split(), "next_cursor": next_cursor,
         "next_params": next_params, "paged": cursor is not None},
    )


def _card(request: Request, rid: str, record: Any, snippet: str) -> dict[str, Any]:
    """One gallery card: an image with its boxes scaled to the thumbnail, or a text with its match."""
    found = views.boxes(record)
    size = None
    if record.text is None and found:
        size = _image_size(request, record)
        size = size or views.boxes_extent(found)
    return {"id": rid, "record": record, "snippet": snippet, "boxes": found, "size": size, "is_text": record.text is not None}


def _image_size(request: Request, record: Any) -> tuple[int, int] | None:
    source = _backend(request).job_source(record.job_id)
    if source is None:
        return None
    try:
        thumbnail = request.app.state.thumbs.get(record, source)
    except AssetError:
        return None
    return (thumbnail.width, thumbnail.height)


def thumbnail(request: Request) -> Response:
    rid = request.path_params["rid"]
    if not rid.isalnum() or len(rid) > 64:
        raise BadInputError("not a record id")
    backend = _backend(request)
    record = backend.record(rid)
    if record is None:
        raise NotFoundError(f"no record {rid} in the index")
    source = backend.job_source(record.job_id)
    if source is None:
        raise NotFoundError(f"the job {record.job_id} of this record is not in the index")
    try:
        thumb = request.app.state.thumbs.get(record, source)
    except AssetError as error:
        return Response(f"cannot show this asset: {error}", status_code=404, media_type="text/plain")
    return Response(thumb.jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})


def jobs_page(request: Request) -> Response:
    now = datetime.now(timezone.utc)
    rows = [(job, views.assets_per_second(job, now)) for job in _backend(request).jobs()]
    return _page(request, "jobs.html", {"rows": rows})


def job_page(request: Request) -> Response:
    view = _backend(request).job(request.path_params["job_id"])
    chart = views.throughput_chart(view.per_second) if view.per_second is not None else None
    rate = views.assets_per_second(view.job, datetime.now(timezone.utc))
    return _page(request, "job.html", {"view": view, "job": view.job, "chart": chart, "rate": rate,
                                        "has_timeline": view.per_second is not None})


def jobs_json(request: Request) -> Response:
    now = datetime.now(timezone.utc)
    return JSONResponse(
        [job.model_dump(mode="json") | {"assets_per_second": round(views.assets_per_second(job, now), 2)}
         for job in _backend(request).jobs()]
    )


def review_page(request: Request) -> Response:
    bots = request.app.state.bots
    bot = _param(request, "bot") or (bots[0] if bots else None)
    raw = _param(request, "threshold", 10)
    try:
        threshold = float(raw) if raw is not None else None
    except ValueError:
        raise BadInputError(f"threshold {raw!r} is not a number") from None
    backend = _backend(request)
    items, cut = backend.queue(bot, QUEUE_SIZE, threshold) if bot else ([], None)
    cards = [_card(request, item.record_id, item.record, "") | {"item": item} for item in items]
    choices = bots if bot is None or bot in bots else [*bots, bot]  # a bring-your-own bot named in the URL
    return _page(request, "review.html", {"bot": bot, "threshold": cut, "cards": cards, "accuracy": backend.accuracy(),
                                           "reviewer": request.app.state.reviewer, "bots": choices})


async def review_json(request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool

    rid = request.path_params["rid"]
    backend = _backend(request)
    if request.method == "GET":
        return JSONResponse(await run_in_threadpool(backend.history, rid))
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return JSONResponse({"error": "send the decision as application/json"}, status_code=415)
    try:
        decision = json.loads(await request.body())
    except ValueError:
        raise BadInputError("the body is not valid JSON") from None
    if not isinstance(decision, dict):
        raise BadInputError("the body is not a JSON object")
    review = await run_in_threadpool(backend.decide, rid, decision, request.app.state.reviewer)
    return JSONResponse(review, status_code=201)
