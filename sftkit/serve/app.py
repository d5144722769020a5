"""The HTTP routes (FastAPI): `/v1/models`, `/v1/chat/completions`, `/v1/completions`, `/health`, `/metrics`.

Every error, including unknown routes and wrong methods, is OpenAI-shaped: `{"error": {"message", "type",
"param", "code"}}`. Everything but `/health` needs a valid key when the server has keys.
"""

from __future__ import annotations

import contextlib
import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from sftkit.serve.exchange import Exchange
from sftkit.serve.responses import model_body, models_body
from sftkit.serve.schema import APIError


def create_app(server) -> FastAPI:
    """The application of a `sftkit.serve.server.Server`; the engine starts and stops with it."""

    @contextlib.asynccontextmanager
    async def lifespan(app):
        server.start()
        try:
            yield
        finally:
            await server.close()

    app = FastAPI(title="sftkit serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    created = int(time.time())

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        message = {404: f"no route {request.url.path}", 405: f"{request.method} is not allowed on "
                   f"{request.url.path}"}.get(exc.status_code, str(exc.detail))
        return JSONResponse(APIError(exc.status_code, message, None, None).body(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        return JSONResponse(APIError(400, str(exc.errors()[:1]), None, "invalid_value").body(), status_code=400)

    def authorized(request: Request, endpoint: str) -> Response | None:
        """None when the key is good; otherwise the 401 (counted in the metrics)."""
        try:
            server.authenticate(request)
        except APIError as exc:
            server.metrics.requests.labels(endpoint, "", str(exc.status)).inc()
            return JSONResponse(exc.body(), status_code=exc.status)
        return None

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics(request: Request):
        return authorized(request, "metrics") or Response(server.metrics.render(),
                                                           media_type=server.metrics.content_type)

    @app.get("/v1/models")
    async def models(request: Request):
        denied = authorized(request, "models")
        if denied is not None:
            return denied
        try:
            return models_body(await server.backend.model_names(), created)
        except APIError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)

    @app.get("/v1/models/{model_id:path}")
    async def model(request: Request, model_id: str):
        denied = authorized(request, "models")
        if denied is not None:
            return denied
        try:
            names = await server.backend.model_names()
        except APIError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        if model_id not in names:
            error = APIError(404, f"the model {model_id!r} does not exist", "model", "model_not_found")
            return JSONResponse(error.body(), status_code=404)
        return model_body(model_id, created)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await Exchange(server, "chat_completions", "chat").handle(request)

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await Exchange(server, "completions", "completion").handle(request)

    return app
