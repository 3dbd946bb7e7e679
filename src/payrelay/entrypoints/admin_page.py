"""The admin page: `/admin` on the payments API's internal listener, for a person with a
browser (issue 12).

Server-rendered with Jinja2 (templates/admin/); htmx swaps the fragments. htmx is served
from the package (static/htmx.min.js: htmx.org 2.0.11 from npm, Zero-Clause BSD, licence in
static/htmx.LICENSE), never from a CDN, and there is no front-end build step. The page reads
only through the `Operations` port and the `DeadLetterBox`, as `payrelay status`, `trace` and
`dlq` do, so the page and the commands cannot disagree. Access is entrypoints/auth.py's
`admin_access`: the bearer token, or the cookie `/admin/sign-in` hands out.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from importlib.resources import files
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from payrelay.entrypoints.admin_api import DeadLetterIdPath
from payrelay.entrypoints.auth import (
    ADMIN_TOKEN_SETTING,
    CSRF_HEADER,
    SESSION_COOKIE,
    SIGN_IN_PATH,
    admin_access,
    csrf_value,
    session_value,
    token_matches,
)
from payrelay.ports import DeadLetterBox
from payrelay.ports.operations import Operations

__all__ = ["admin_page_router"]

PAGE_LETTERS = 50
"""The most dead letters the page lists (the newest; `payrelay dlq list` shows more)."""
QUERY_MAX = 128
"""An order id or payment id is far shorter; a longer search is refused (422)."""
_SIGN_IN_BODY_MAX = 4096


def admin_page_router(
    operations: Operations, box: DeadLetterBox, token: Callable[[], str]
) -> APIRouter:
    """The page, its htmx fragments, htmx itself and the sign-in form (the one part that is
    reachable without the token: it is how a browser gets one)."""
    render = _renderer()
    router = APIRouter(include_in_schema=False)
    router.include_router(_sign_in_routes(render, token))
    guarded = [Depends(admin_access(token))]
    router.include_router(_page_routes(render, operations, box, token), dependencies=guarded)
    router.include_router(_fragment_routes(render, operations, box), dependencies=guarded)
    return router


Render = Callable[..., HTMLResponse]


def _renderer() -> Render:
    environment = Environment(
        loader=PackageLoader("payrelay.entrypoints", "templates"),
        autoescape=select_autoescape(["html"]), undefined=StrictUndefined,
    )
    environment.filters["age"] = _age
    environment.filters["when"] = _when

    def render(name: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
        html = environment.get_template(f"admin/{name}").render(csrf_header=CSRF_HEADER,
                                                                **context)
        return HTMLResponse(html, status_code=status_code,
                            headers={"cache-control": "no-store"})

    return render


def _age(seconds: float | None) -> str:
    """`None` -> "-", 42.0 -> "42 s", 4000 -> "1.1 h": how long something has waited."""
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _when(at: datetime | None) -> str:
    return "never" if at is None else at.isoformat(sep=" ", timespec="seconds")


def _sign_in_routes(render: Render, token: Callable[[], str]) -> APIRouter:
    router = APIRouter()

    @router.get(SIGN_IN_PATH)
    async def sign_in_form() -> HTMLResponse:
        return render("sign_in.html", error=_disabled(token()))

    @router.post(SIGN_IN_PATH)
    async def sign_in(request: Request) -> Response:
        expected, given = token(), await _posted_token(request)
        if not token_matches(given, expected):
            error = _disabled(expected) or "That is not the admin token."
            return render("sign_in.html", error=error, status_code=401)
        signed_in = RedirectResponse("/admin", status_code=303)
        signed_in.set_cookie(
            SESSION_COOKIE, session_value(expected), httponly=True, samesite="strict",
            secure=request.url.scheme == "https", path="/admin",
        )
        return signed_in

    return router


def _disabled(expected: str) -> str | None:
    if expected:
        return None
    return f"The admin page is disabled: set {ADMIN_TOKEN_SETTING} to enable it."


async def _posted_token(request: Request) -> str | None:
    """The `token` field of a url-encoded form (the sign-in form has no other field)."""
    body = await request.body()
    if len(body) > _SIGN_IN_BODY_MAX:
        return None
    values = parse_qs(body.decode("utf-8", "replace")).get("token")
    return values[0].strip() if values else None


def _page_routes(
    render: Render, operations: Operations, box: DeadLetterBox, token: Callable[[], str]
) -> APIRouter:
    router = APIRouter()
    script = files("payrelay.entrypoints").joinpath("static/htmx.min.js").read_bytes()

    @router.get("/admin")
    async def page(
        q: Annotated[str, Query(max_length=QUERY_MAX)] = "",
    ) -> HTMLResponse:
        status = await operations.status()
        letters = await box.recent(limit=PAGE_LETTERS)
        trace = await operations.trace(q.strip()) if q.strip() else None
        return render("page.html", status=status, letters=letters, trace=trace, query=q,
                      csrf=csrf_value(token()), replayed=[])

    @router.get("/admin/static/htmx.min.js")
    async def htmx() -> Response:
        return Response(script, media_type="text/javascript",
                        headers={"cache-control": "private, max-age=3600"})

    @router.post("/admin/sign-out")
    async def sign_out() -> Response:
        # htmx follows HX-Redirect; a plain client is told where to go by the 303.
        signed_out = Response(status_code=204, headers={"hx-redirect": SIGN_IN_PATH})
        signed_out.delete_cookie(SESSION_COOKIE, path="/admin", httponly=True,
                                 samesite="strict")
        return signed_out

    return router


def _fragment_routes(render: Render, operations: Operations, box: DeadLetterBox) -> APIRouter:
    router = APIRouter()

    @router.get("/admin/page/status")
    async def status() -> HTMLResponse:
        return render("_status.html", status=await operations.status())

    @router.get("/admin/page/trace")
    async def trace(q: Annotated[str, Query(min_length=1, max_length=QUERY_MAX)]) -> HTMLResponse:
        return render("_trace.html", trace=await operations.trace(q.strip()))

    @router.get("/admin/page/dead-letters")
    async def dead_letters() -> HTMLResponse:
        return render("_dead_letters.html", letters=await box.recent(limit=PAGE_LETTERS),
                      replayed=[])

    @router.post("/admin/page/dead-letters/{dead_letter_id}/replay")
    async def replay(dead_letter_id: DeadLetterIdPath) -> HTMLResponse:
        # NotFound (404) and Conflict (409) are the app's shared answers (http_errors).
        replayed = await box.replay([dead_letter_id])
        return render("_dead_letters.html", letters=await box.recent(limit=PAGE_LETTERS),
                      replayed=replayed)

    return router
