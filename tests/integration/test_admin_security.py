"""Every `/admin` route of the payments internal app is behind the admin token: without it
401 (a browser asking for a page is sent to sign in), and with no token configured every
route is disabled, naming the setting that enables it. The sign-in cookie is HttpOnly,
SameSite=Strict and never the token; a POST it authorises needs the page's CSRF header."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from payrelay.entrypoints.auth import CSRF_HEADER, SESSION_COOKIE, csrf_value
from payrelay.entrypoints.http_server import EmbeddedServer
from payrelay.entrypoints.listeners import payments_listeners
from tests.integration.admin_fixtures import (
    TOKEN,
    FixedOperations,
    add_dead_letter,
    internal_app_with_page,
)
from tests.support import StackFactory

SIGN_IN = "/admin/sign-in"
PATH_VALUES = {"dead_letter_id": "orders-1", "record_id": "shop-77", "refund_id": "1"}


def admin_routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path) of every route under /admin, path parameters filled in (FastAPI keeps
    included routers nested: `iter_route_contexts` is how its OpenAPI code walks them)."""
    for route in iter_route_contexts(app.routes):
        if route.path is not None and route.path.startswith("/admin"):
            path = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], route.path)
            for method in sorted(getattr(route, "methods", None) or ()):
                yield method, path


@contextlib.asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with EmbeddedServer(app) as server, httpx.AsyncClient(
        base_url=server.base_url, timeout=10, follow_redirects=False
    ) as client:
        yield client


@pytest.fixture
async def page_app(make_stack: StackFactory) -> AsyncIterator[tuple[FastAPI, FastAPI]]:
    """(the internal app with the page, the one listeners.py builds), same system."""
    async with make_stack(start_workers=False, admin_token=TOKEN) as stack:
        listeners = payments_listeners(stack.system, stack.settings)
        yield internal_app_with_page(stack, FixedOperations(), TOKEN), listeners.internal


def test_the_page_covers_every_admin_route_the_listener_serves(page_app):
    with_page, listener = page_app
    assert set(admin_routes(listener)) <= set(admin_routes(with_page))
    assert ("GET", "/admin") in set(admin_routes(with_page))


@pytest.mark.parametrize("configured", [TOKEN, ""], ids=["token-set", "no-token-configured"])
async def test_every_admin_route_refuses_a_call_without_the_token(
    make_stack: StackFactory, configured: str
):
    async with make_stack(start_workers=False) as stack:
        app = internal_app_with_page(stack, FixedOperations(), configured)
        routes = [r for r in admin_routes(app) if r[1] != SIGN_IN]
        assert len(routes) >= 9, routes
        async with served(app) as client:
            for method, path in routes:
                for headers in ({}, {"authorization": "Bearer wrong"},
                                {"cookie": f"{SESSION_COOKIE}=forged"}):
                    response = await client.request(method, path, headers=headers)
                    assert response.status_code == 401, (method, path, headers)
                    assert response.headers["www-authenticate"] == "Bearer"
                    if not configured:
                        assert "set PAYRELAY_ADMIN_TOKEN to enable it" in response.text
            for given in ("", "x", "Bearer x"):
                refused = await client.post(SIGN_IN, data={"token": given})
                assert refused.status_code == 401
                assert SESSION_COOKIE not in refused.headers.get("set-cookie", "")
            if not configured:
                form = await client.get(SIGN_IN)
                assert "set PAYRELAY_ADMIN_TOKEN to enable it" in form.text


async def test_with_the_token_every_admin_route_answers(make_stack: StackFactory):
    async with make_stack(start_workers=False, admin_token=TOKEN) as stack:
        app = internal_app_with_page(stack, FixedOperations(), TOKEN)
        bearer = {"authorization": f"Bearer {TOKEN}"}
        async with served(app) as client:
            for method, path in admin_routes(app):
                if path == SIGN_IN:
                    continue  # takes the token in its form, not in a header
                response = await client.request(method, path, headers=bearer,
                                                params={"q": "shop-77"})
                assert response.status_code not in (401, 403, 500), (method, path)


async def test_a_browser_is_sent_to_sign_in_then_holds_a_strict_httponly_cookie(
    make_stack: StackFactory,
):
    async with make_stack(start_workers=False, admin_token=TOKEN) as stack:
        app = internal_app_with_page(stack, FixedOperations(), TOKEN)
        async with served(app) as client:
            page = await client.get("/admin", headers={"accept": "text/html"})
            assert page.status_code == 303 and page.headers["location"] == SIGN_IN
            wrong = await client.post(SIGN_IN, data={"token": TOKEN + "x"})
            assert wrong.status_code == 401 and "not the admin token" in wrong.text
            signed_in = await client.post(SIGN_IN, data={"token": TOKEN})
            assert signed_in.status_code == 303 and signed_in.headers["location"] == "/admin"
            cookie = signed_in.headers["set-cookie"].lower()
            assert "httponly" in cookie and "samesite=strict" in cookie
            assert TOKEN.lower() not in cookie
            page = await client.get("/admin")
            assert page.status_code == 200 and "Pipeline" in page.text


async def test_a_cookie_post_needs_the_csrf_header_a_bearer_post_does_not(
    make_stack: StackFactory,
):
    async with make_stack(start_workers=False, admin_token=TOKEN) as stack:
        app = internal_app_with_page(stack, FixedOperations(), TOKEN)
        first, second = await add_dead_letter(stack), await add_dead_letter(stack)
        async with served(app) as client:
            await client.post(SIGN_IN, data={"token": TOKEN})
            assert client.cookies.get(SESSION_COOKIE)
            replay = f"/admin/page/dead-letters/{first}/replay"
            cross_site = await client.post(replay)  # what a form on another site would send
            assert cross_site.status_code == 403
            forged = await client.post(replay, headers={CSRF_HEADER: "0" * 64})
            assert forged.status_code == 403
            assert {d.id for d in await stack.system.dead_letters.recent()} == {first, second}
            same_page = await client.post(replay, headers={CSRF_HEADER: csrf_value(TOKEN)})
            assert same_page.status_code == 200 and f'data-id="{first}"' not in same_page.text
            assert f'data-id="{second}"' in same_page.text
            client.cookies.clear()
            by_bearer = await client.post(f"/admin/page/dead-letters/{second}/replay",
                                          headers={"authorization": f"Bearer {TOKEN}"})
            assert by_bearer.status_code == 200
            assert await stack.system.dead_letters.recent() == []


async def test_signing_out_clears_the_cookie(make_stack: StackFactory):
    async with make_stack(start_workers=False, admin_token=TOKEN) as stack:
        app = internal_app_with_page(stack, FixedOperations(), TOKEN)
        async with served(app) as client:
            await client.post(SIGN_IN, data={"token": TOKEN})
            assert (await client.get("/admin/page/status")).status_code == 200
            signed_out = await client.post("/admin/sign-out",
                                           headers={CSRF_HEADER: csrf_value(TOKEN)})
            assert signed_out.status_code == 204
            assert signed_out.headers["hx-redirect"] == SIGN_IN
            assert not client.cookies.get(SESSION_COOKIE)
            assert (await client.get("/admin/page/status")).status_code == 401
