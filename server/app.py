"""The FastAPI application: `create_app(settings)` builds a fresh app (tests make one per temporary database)."""
from __future__ import annotations

import hmac
import logging

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from spiraltorch_tuner import rules
from spiraltorch_tuner.paths import SHADERS, STATIC

from . import __version__
from .routes import get_settings, get_store, native, pages, runs, validation_message  # noqa: F401  (get_*: Depends)
from .settings import Settings
from .store import RETRY_AFTER_S, StoreFull, StoreUnavailable, open_store

log = logging.getLogger("spiraltorch_tuner")

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
SECURITY_HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]


class Guard:
    """ASGI middleware: security headers on every response, the body size limit (413), and the API token on
    write and native endpoints when one is configured (401)."""

    def __init__(self, app, settings: Settings):
        self.app, self.settings = app, settings

    def _needs_token(self, method: str, path: str) -> bool:
        if not self.settings.token or method == "OPTIONS":     # CORS preflights carry no credentials
            return False
        return method not in ("GET", "HEAD") or path.startswith("/api/native") or path.endswith("/compare")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in SECURITY_HEADERS if k not in names]
            await send(message)

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        limit = self.settings.max_body_bytes
        if self._needs_token(scope["method"], scope["path"]):
            got = headers.get("authorization", "")
            want = f"Bearer {self.settings.token}"
            if not hmac.compare_digest(got.encode(), want.encode()):
                return await _reply(send_with_headers, 401, "this endpoint needs the API token: send the header "
                                    "'Authorization: Bearer <token>' (the server's SPIRALTORCH_TOKEN)")
        try:
            length = int(headers.get("content-length", "0") or 0)
        except ValueError:
            return await _reply(send_with_headers, 400, "invalid Content-Length header")
        if length > limit:
            return await _reply(send_with_headers, 413, f"request body of {length} bytes is over this server's "
                                f"limit of {limit} bytes (max_body_bytes)")
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message
        started = False

        async def send_tracked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send_with_headers(message)
        try:
            await self.app(scope, limited_receive, send_tracked)
        except BodyTooLarge as e:
            if not started:
                await _reply(send_with_headers, 413, e.detail)
        except Exception:
            # Starlette's ServerErrorMiddleware sits outside this one; answer here so the 500 carries the security
            # headers, then let it log the exception.
            if not started:
                await _reply(send_with_headers, 500, "internal error; the server log has details")
            raise


class BodyTooLarge(HTTPException):
    """A streamed body that grew over max_body_bytes. An HTTPException so FastAPI's body reader passes it on (any
    other error there becomes a 400) and the handlers answer 413."""

    def __init__(self, limit: int):
        super().__init__(413, f"request body is over this server's limit of {limit} bytes (max_body_bytes)")


async def _reply(send, status: int, detail: str):
    resp = JSONResponse({"detail": detail}, status_code=status)
    await send({"type": "http.response.start", "status": status, "headers": resp.raw_headers})
    await send({"type": "http.response.body", "body": resp.body})


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    rules.BOOK.user()    # a bad SPIRALTORCH_TUNER_HEURISTICS fails here, naming the path (HeuristicsError)
    app = FastAPI(title="SpiralTorch Tuner", version=__version__,
                  description="Tune WGSL TopK and where_nd kernels in the browser's WebGPU; run them natively; "
                              "generate wgpu_heuristics.rs.")
    app.state.settings = settings
    app.state.store = open_store(settings)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        bad_json = [e for e in errors if e.get("type") == "json_invalid"]
        if bad_json:
            e = bad_json[0]
            pos = e.get("loc", ("body", "?"))[-1]
            why = (e.get("ctx") or {}).get("error", "JSON decode error")
            return JSONResponse({"detail": f"body is not valid JSON: {why} at character {pos}"}, status_code=400)
        detail = validation_message(errors)
        if any(tuple(e.get("loc", ())) == ("body",) for e in errors):
            detail += " (send a JSON object with Content-Type: application/json)"
        return JSONResponse({"detail": detail, "errors": _jsonable_errors(errors)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        detail = exc.detail
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such path: {request.url.path}"
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(StoreUnavailable)
    async def _store_unavailable(request: Request, exc: StoreUnavailable):
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})

    @app.exception_handler(StoreFull)
    async def _store_full(request: Request, exc: StoreFull):
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": str(exc)}, status_code=507)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); the server log has details"},
                            status_code=500)

    app.include_router(pages.router)
    app.include_router(runs.router)
    app.include_router(native.router)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.mount("/shaders", StaticFiles(directory=str(SHADERS)), name="shaders")
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(Guard, settings=settings)
    return app


def _jsonable_errors(errors):
    out = []
    for e in errors[:50]:
        out.append({"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
                    "type": str(e.get("type", ""))})
    return out


import mimetypes  # noqa: E402  (StaticFiles guesses types from this table)

mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/plain", ".wgsl")
mimetypes.add_type("image/svg+xml", ".svg")
