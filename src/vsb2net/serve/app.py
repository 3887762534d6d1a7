"""The HTTP API and web page of ``vsb2net serve`` (FastAPI), around :class:`SearchService`.

``create_app(run_dir, index_path, token=..., limits=...)`` loads the model and the index once and
returns the FastAPI application; ``vsb2net serve`` runs it with uvicorn.  Routes (OpenAPI at
``/openapi.json``, Swagger UI at ``/docs``):

* ``POST /search/image`` (multipart ``file``, form fields ``k``, ``radius``),
  ``GET /search/class?name=``, ``GET /search/text?q=``, ``GET /search/code?hex=``,
  ``GET /search/item?id=`` (an indexed item's own code: a click on a hit): each takes
  ``k`` (hits, default 10) or ``radius`` (every item within that Hamming distance, at most k or
  the server's max_k);
* ``GET /thumb/{id}``: PNG picture of an indexed item (dataset image, or a file the index lists);
* ``GET /info``, ``GET /health`` (with Swagger UI's files under /docs/assets/, the only routes
  without the token), ``GET /`` (the page), ``GET /docs`` (Swagger UI, served from this server:
  it works offline).

Every error reaches the client as ``{"detail": "<one line>"}`` with a 4xx status (500 "internal
error" for a bug, whose traceback is logged here and never sent).
"""
from __future__ import annotations

import gc
import hmac
import logging
import re
import warnings
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from vsb2net.errors import VsbError

from .service import Limits, SearchService, one_line

log = logging.getLogger("vsb2net.serve")

TOKEN_ENV = "VSB2NET_TOKEN"
#: room for the multipart envelope (boundaries, headers, the other fields) around the file
MULTIPART_OVERHEAD = 64 * 1024
#: Swagger UI's own files (from fastapi-offline: /docs needs no CDN), public like /health: the
#: browser fetches them without the page's token
DOCS_ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css", "favicon.png": "image/png"}
#: /favicon.ico is public too: browsers ask for it without the page's token
PUBLIC_PATHS = frozenset({"/health", "/favicon.ico", *(f"/docs/assets/{name}" for name in DOCS_ASSETS)})


def _error(status: int, detail: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"detail": one_line(detail)}, status_code=status, headers=headers)


# ----------------------------------------------------------------------------- schemas (OpenAPI)

class Hit(BaseModel):
    rank: int = Field(description="1 = nearest")
    id: int = Field(description="the item's id in the index (a dataset index for indexes of a dataset)")
    distance: int = Field(description="Hamming distance to the query code")
    score: float | None = Field(description="inner product of the item's code (+-1) with the query's real-valued code "
                                            "(the model's output before the sign): the order among items at one "
                                            "distance, largest first; null for code queries (ties in a fixed "
                                            "shuffled order)")
    metadata: Any = Field(description='what the index stores for the item, e.g. {"class": "zebra"} or '
                                      '{"file": "photos/a.png", relative to the indexed folder}; null when none')
    tie: bool = Field(description="another item in the index lies at the same distance (see groups): the order "
                                  "among them is by score; equal scores, and code queries, in a fixed shuffled order")
    thumbnail: str | None = Field(description="URL of the item's picture (GET /thumb/{id}); null when the index "
                                              "has no pictures (built from codes)")
    classes: list[str] = Field(description="the item's classes as the index knows them (a dataset's class; an image "
                                           "folder's sub-folder); [] when it knows none")
    of_query_class: bool | None = Field(description="the item is of the queried class (query_class); null when the "
                                                    "query names no class the index knows")


class TieGroup(BaseModel):
    distance: int
    count: int = Field(description="items the index holds at this distance (at least this many when exact is false)")
    shown: int = Field(description="how many of them are among the hits")
    exact: bool = Field(description="false when the group was larger than the search counts (10,000 past the k-th "
                                    "hit): count is then a lower bound")


class QueryEcho(BaseModel):
    kind: str = Field(description="image, class, text, code or item")
    query: str = Field(description="the file name, class name, text or hex code given")
    code: str = Field(description="the query's binary code in hex")


class QueryClass(BaseModel):
    name: str = Field(description="the queried class, as the index writes it: a class query's name, or the class "
                                  "of the item an item query searches by")
    hits: int = Field(description="how many of the hits are of that class")
    of: int = Field(description="how many hits there are")


class SearchResult(BaseModel):
    query: QueryEcho
    k: int = Field(description="hits asked for (with radius: the most returned)")
    radius: int | None = Field(description="the Hamming radius, or null for k-nearest search")
    count: int
    score_max: float | None = Field(description="the score of an item whose code is the query's own (the sum of "
                                                "the real-valued code's magnitudes): scores run from -score_max to "
                                                "score_max; null when there are no scores")
    nearest_distance: int | None = Field(description="radius search without hits: the distance of the nearest item "
                                                     "(a radius that reaches it); null otherwise")
    query_class: QueryClass | None = Field(description="the hits of the queried class, counted (where the index "
                                                       "knows its items' classes); null otherwise")
    hits: list[Hit]
    ties_by: str = Field(description="how items at one distance are ordered: 'score' (the query's real-valued "
                                     "code; equal scores in a fixed shuffled order) or 'shuffle' (a fixed shuffled "
                                     "order: code queries, and backends that return no stored codes)")
    groups: list[TieGroup] = Field(description="one entry per distance among the hits, nearest first")
    more_at_last_distance: bool = Field(description="more items lie at the last hit's distance than are listed")
    truncated: bool | None = Field(description="radius search: more items lie within the radius than k; null for "
                                               "k-nearest search")


class ErrorReply(BaseModel):
    detail: str = Field(description="one line saying what was wrong")


# -- /info --

class ClassNameMap(BaseModel):
    unseen: float = Field(description="the run's measured class-name mAP on its unseen classes")
    chance: float | None = Field(description="the mAP of a random order of the same database")


class ClassNameQuality(BaseModel):
    map: float = Field(description="measured class-name mAP on the unseen classes (vsb2net evaluate)")
    chance: float | None = Field(description="the mAP of a random order (null when not measured)")
    ratio: float | None = Field(description="map / chance")
    level: str = Field(description="below_chance (ratio < 1), near_chance (ratio < 1.5), above_chance, or measured "
                                   "(no chance level)")
    plain: str = Field(description="the same in words, for a person")


class QuerySupport(BaseModel):
    supported: bool
    reason: str | None = Field(None, description="why not (absent when supported)")
    plain: str | None = Field(None, description="the reason in words for a person (absent when supported)")


class QueryKinds(BaseModel):
    image: QuerySupport
    class_: QuerySupport = Field(alias="class")
    text: QuerySupport
    code: QuerySupport
    item: QuerySupport


class InfoLimits(BaseModel):
    max_k: int
    max_radius: int = Field(description="the code length in bits")
    max_upload_bytes: int
    max_pixels: int
    max_text_chars: int


class Batching(BaseModel):
    window_ms: float
    max_batch: int
    index_calls: int = Field(description="index calls made so far")
    queries: int = Field(description="queries they answered")
    image_model_calls: int = Field(description="forward passes over uploads so far")
    images: int = Field(description="uploads they coded")


class IndexSource(BaseModel):
    kind: str | None = Field(None, description="dataset, images or codes")
    name: str | None = Field(None, description="the dataset's name")
    split: str | None = Field(None, description="which of the dataset's items")
    folder: str | None = Field(None, description="the indexed folder's name (never its path)")


class Info(BaseModel):
    method: str
    bits: int
    backend: str
    backend_params: dict[str, Any] = Field(description="the backend's build and search settings",
                                           json_schema_extra={"examples": [{"nlist": 1024, "nprobe": 16}]})
    count: int = Field(description="indexed items")
    run: str
    index: str
    model: str = Field(description="the model's fingerprint (the index was built by it)")
    dataset: str
    index_source: IndexSource
    class_vectors: str = Field(description="where the class vectors come from: glove, minilm, attributes or a file")
    class_names: list[str]
    seen: list[str] | None
    unseen: list[str] | None
    class_name_map: ClassNameMap | None = Field(description="null before `vsb2net evaluate`")
    class_name_quality: ClassNameQuality | None = Field(description="null before `vsb2net evaluate`")
    index_classes: list[str] = Field(description="the classes the index knows of its items, which hits are marked by")
    index_warnings: list[str] = Field(description="why the indexed images may not fit the model; [] when they do")
    queries: QueryKinds
    thumbnails: bool
    limits: InfoLimits
    batching: Batching


ERRORS: dict[int | str, dict[str, Any]] = {status: {"model": ErrorReply, "description": text} for status, text in (
    (400, "bad input (unreadable image, unknown class name, malformed code, ...)"),
    (401, "missing or wrong token"), (413, "upload over the size limit"),
    (422, "a parameter is missing, of the wrong type or out of range"))}


# ----------------------------------------------------------------------------- middleware

class TokenAuth:
    """Every route but /health needs ``Authorization: Bearer <token>`` or ``?token=<token>``."""

    def __init__(self, app, token: str):
        self.app = app
        self.token = token.encode("utf-8")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            return await self.app(scope, receive, send)
        given = None
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, rest = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    given = rest.strip()
        if given is None:
            from urllib.parse import parse_qs

            values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
            given = values[0].encode("utf-8") if values else None
        if given is None or not hmac.compare_digest(given, self.token):
            response = _error(401, f"missing or wrong token: send the header 'Authorization: Bearer <token>' "
                                   f"(the server's {TOKEN_ENV}), or ?token=<token> for the web page.",
                              headers={"WWW-Authenticate": "Bearer"})
            return await response(scope, receive, send)
        return await self.app(scope, receive, send)


class BodyLimit:
    """Request bodies of at most ``limit`` bytes: a larger Content-Length is refused before the
    body is parsed, and a body that streams past the limit (no or a false Content-Length) is cut
    off as soon as it does; both answer 413.  Up to ``drain`` bytes of a refused body are read and
    dropped first, so that a client that sends its whole body before reading (most do) sees the
    413 rather than a reset connection; a larger body is not read at all."""

    def __init__(self, app, limit: int, upload_limit: int):
        self.app = app
        self.limit = limit
        self.upload_limit = upload_limit
        self.drain = 4 * limit + (1 << 20)

    def _message(self) -> str:
        return f"the upload is larger than the limit of {self.upload_limit:,} bytes; send a smaller image."

    @staticmethod
    async def _discard(receive, budget: int) -> None:
        while budget > 0:
            message = await receive()
            if message["type"] != "http.request":
                return
            budget -= len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    return await _error(400, "the Content-Length header is not a number.")(scope, receive, send)
                if declared > self.limit:
                    if declared <= self.drain:
                        await self._discard(receive, declared)
                    return await _error(413, self._message(), headers={"Connection": "close"})(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    if message.get("more_body", False):
                        await self._discard(receive, self.drain - seen)
                    # an HTTPException passes through FastAPI's body parsing to the handler
                    raise HTTPException(413, self._message(), headers={"Connection": "close"})
            return message

        return await self.app(scope, limited, send)


class SecurityHeaders:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                # the page carries the token in its URL: never send it to another site
                headers += [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                            (b"x-frame-options", b"DENY")]
                message = {**message, "headers": headers}
            await send(message)

        return await self.app(scope, receive, with_headers)


class RedactToken(logging.Filter):
    """Masks ``token=...`` in access-log lines (the page sends it in URLs)."""

    PATTERN = re.compile(r"(token=)[^&\s\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self.PATTERN.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = self.PATTERN.sub(r"\1***", record.msg)
        return True


# ----------------------------------------------------------------------------- the application

def _page() -> str:
    return resources.files("vsb2net.serve").joinpath("page.html").read_text(encoding="utf-8")


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "body", "path", "form")]
        where = ".".join(loc) or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _load_service(run_dir: str | Path, index_path: str | Path, limits: Limits, warm_up: bool,
                  **service_params: Any) -> SearchService:
    # Pillow's warning about huge pictures becomes an error (uploads are also held to max_pixels,
    # well below Pillow's limit, before they are decoded)
    from PIL import Image

    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
    service = SearchService(run_dir, index_path, limits=limits, **service_params)
    if warm_up:
        service.warm_up()
    # what is loaded now (the model, the index's metadata, GloVe) lives as long as the server: out
    # of the collector's sight, a full collection no longer walks it while queries wait
    gc.collect()
    gc.freeze()
    return service


def _lifespan(service: SearchService):
    """The batcher runs while the server does, and the service closes with it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.batcher.start()
        try:
            yield
        finally:
            await service.close()

    return lifespan


def _description(service: SearchService) -> str:
    return (f"Zero-shot image hashing search: {service.identity['method']} run {service.run.path.name}, "
            f"{service.run.bits}-bit codes, {len(service.index):,} indexed items ({service.index.backend_name}). "
            "Query by image, class name, free text or code; hits are ranked by Hamming distance, and items "
            "at one distance by their inner product with the query's real-valued code (code queries: shuffled). "
            "Authentication: `Authorization: Bearer <token>` (or `?token=`) on every "
            "route but /health when the server has a token.")


# -- errors: one line of JSON, never a traceback -----------------------------------------------

async def _vsb_error(request: Request, exc: VsbError):
    return _error(400, str(exc))


async def _http_error(request: Request, exc: HTTPException):
    return _error(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))


async def _invalid(request: Request, exc: RequestValidationError):
    return _error(422, _validation_message(exc))


async def _bug(request: Request, exc: Exception):
    log.error("internal error answering %s %s", request.method, request.url.path, exc_info=exc)
    return _error(500, "internal error")


def _install_error_handlers(app: FastAPI) -> None:
    # Starlette types a handler as taking any Exception; one registered for a class only ever gets
    # that class's instances, so a handler of the narrower type is right (its stubs cannot say so)
    app.add_exception_handler(VsbError, _vsb_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _bug)


def _install_middleware(app: FastAPI, limits: Limits, token: str | None) -> None:
    # outermost last: the token is checked before any body is read
    app.add_middleware(BodyLimit, limit=limits.max_upload_bytes + MULTIPART_OVERHEAD,
                       upload_limit=limits.max_upload_bytes)
    if token:
        app.add_middleware(TokenAuth, token=token)
        access = logging.getLogger("uvicorn.access")
        if not any(isinstance(f, RedactToken) for f in access.filters):
            access.addFilter(RedactToken())
    app.add_middleware(SecurityHeaders)


def _install_openapi(app: FastAPI, token: str | None) -> None:
    """The generated schema, plus the bearer scheme when the server has a token."""

    def openapi():
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            if token:
                schema.setdefault("components", {})["securitySchemes"] = {
                    "bearer": {"type": "http", "scheme": "bearer", "description": f"the server's {TOKEN_ENV}"}}
                schema["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema


# -- routes ------------------------------------------------------------------------------------

def _server_router(service: SearchService, page: str) -> APIRouter:
    """The page, /health, /info and the Swagger UI."""
    router = APIRouter()

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index_page():
        return HTMLResponse(page, headers={
            "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
                                       "style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; "
                                       "frame-ancestors 'none'", "Cache-Control": "no-store"})

    @router.get("/health", summary="liveness (no token needed)", tags=["server"])
    async def health() -> dict:
        return {"status": "ok"}

    # load balancers and uptime checks probe with HEAD
    @router.head("/health", include_in_schema=False)
    async def health_head() -> Response:
        return Response(status_code=200)

    @router.get("/info", summary="the run, the index, the supported queries and the limits", tags=["server"],
                response_model=Info, response_model_by_alias=True, responses={401: ERRORS[401]})
    async def info():
        return service.info()

    @router.get("/favicon.ico", include_in_schema=False)
    async def favicon():
        data = resources.files("fastapi_offline").joinpath("static", "favicon.png").read_bytes()
        return Response(data, media_type="image/png", headers={"Cache-Control": "public, max-age=86400"})

    @router.get("/docs", include_in_schema=False)
    async def docs(request: Request):
        url = "/openapi.json"
        if "token" in request.query_params:
            url += "?token=" + quote(request.query_params["token"], safe="")
        return get_swagger_ui_html(openapi_url=url, title="vsb2net search: API",
                                   swagger_js_url="/docs/assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs/assets/swagger-ui.css",
                                   swagger_favicon_url="/docs/assets/favicon.png")

    @router.get("/docs/assets/{name}", include_in_schema=False)
    async def docs_asset(name: str):
        if name not in DOCS_ASSETS:
            raise HTTPException(404, f"no such file: {name}")
        data = resources.files("fastapi_offline").joinpath("static", name).read_bytes()
        return Response(data, media_type=DOCS_ASSETS[name], headers={"Cache-Control": "public, max-age=86400"})

    return router


def _search_router(service: SearchService) -> APIRouter:
    """/search/image, /search/class, /search/text, /search/code and /thumb/{id}, bounded by the
    service's limits and code length."""
    router = APIRouter()
    limits = service.limits
    bits = service.run.bits
    # The search routes return their JSON as built (SearchResult documents it): validating every
    # reply against the model again would cost more than the search of a small index.
    k_doc = f"number of hits, 1..{limits.max_k} (default 10; with radius: the most returned, default {limits.max_k})"
    r_doc = f"instead of the k nearest: every item within this Hamming distance (0..{bits}, inclusive)"

    def k_param():
        return Query(None, ge=1, le=limits.max_k, description=k_doc)

    def radius_param():
        return Query(None, ge=0, le=bits, description=r_doc)

    @router.post("/search/image", response_model=SearchResult, tags=["search"], responses=ERRORS,
                 summary="search by an uploaded image (multipart field 'file')",
                 description="The image is converted to the run's input (28x28 greyscale for the default backbone; "
                             "like the training images, a light object on a dark background) and coded by the "
                             f"visual branch. At most {limits.max_upload_bytes:,} bytes and {limits.max_pixels:,} "
                             "pixels.")
    async def search_image(file: UploadFile = File(..., description="the query image (PNG, JPEG, ...)"),
                           k: int | None = Form(None, ge=1, le=limits.max_k, description=k_doc),
                           radius: int | None = Form(None, ge=0, le=bits, description=r_doc),
                           k_query: int | None = Query(None, alias="k", ge=1, le=limits.max_k,
                                                       description="k as a query parameter (the form field wins)"),
                           radius_query: int | None = Query(None, alias="radius", ge=0, le=bits,
                                                            description="radius as a query parameter")):
        # ?k=3 on the URL is honoured like the form field, as on every other search route
        k = k if k is not None else k_query
        radius = radius if radius is not None else radius_query
        service.check_k_radius(k, radius)
        data = await file.read(limits.max_upload_bytes + 1)
        if len(data) > limits.max_upload_bytes:
            raise HTTPException(413, f"the upload is larger than the limit of {limits.max_upload_bytes:,} bytes; "
                                     "send a smaller image.")
        code = await service.image_code(data)
        name = one_line(Path(file.filename or "upload").name, 200)
        return JSONResponse(await service.search("image", name, code, k, radius))

    @router.get("/search/class", response_model=SearchResult, tags=["search"], responses=ERRORS,
                summary="search by class name (zero-shot for classes never seen in training)",
                description="One of the run's classes (GET /info lists them) uses the run's own class vector; for "
                            "runs on GloVe vectors any English word(s) work too. The vector goes through the "
                            "semantic branch.")
    async def search_class(name: str = Query(..., description="class name, e.g. zebra"),
                           k: int | None = k_param(), radius: int | None = radius_param()):
        service.check_k_radius(k, radius)
        code = await service.class_code(name)
        return JSONResponse(await service.search("class", one_line(name, 200), code, k, radius))

    @router.get("/search/text", response_model=SearchResult, tags=["search"], responses=ERRORS,
                summary="search by free text (runs on glove or minilm class vectors)",
                description="The text goes through the run's class-vector source: GloVe runs average the word "
                            "vectors of its words; minilm runs embed it with all-MiniLM-L6-v2. Runs on attribute "
                            "vectors answer 400: query them by class name.")
    async def search_text(q: str = Query(..., description="free text, e.g. 'a striped horse'"),
                          k: int | None = k_param(), radius: int | None = radius_param()):
        service.check_k_radius(k, radius)
        code = await service.text_code(q)
        return JSONResponse(await service.search("text", one_line(q, 200), code, k, radius))

    @router.get("/search/code", response_model=SearchResult, tags=["search"], responses=ERRORS,
                summary="search by a binary code given in hex",
                description=f"{bits // 4} hex digits ({bits} bits, 2 digits per byte, as the hits' query.code "
                            "shows).")
    async def search_code(hex: str = Query(..., description="the code in hex"),  # noqa: A002
                          k: int | None = k_param(), radius: int | None = radius_param()):
        service.check_k_radius(k, radius)
        code = service.hex_code(hex)
        return JSONResponse(await service.search("code", hex.strip(), code, k, radius))

    _add_item_route(router, service, k_param, radius_param)
    _add_thumbnail_route(router, service)
    return router


def _add_item_route(router: APIRouter, service: SearchService, k_param, radius_param) -> None:
    """/search/item: search by an indexed item's own code (what a click on a hit does)."""

    @router.get("/search/item", response_model=SearchResult, tags=["search"],
                responses={**ERRORS, 404: {"model": ErrorReply, "description": "the index holds no item with that id"}},
                summary="search by an indexed item (what a click on a hit does)",
                description="The item's stored code is the query; where the index has its picture and the "
                            "model codes it to the same code, the picture's real-valued code orders the ties.")
    async def search_item(id: int = Query(..., description="the item's id, as hits show it"),  # noqa: A002
                          k: int | None = k_param(), radius: int | None = radius_param()):
        service.check_k_radius(k, radius)
        try:
            code = await service.item_code(id)
        except LookupError as exc:
            raise HTTPException(404, str(exc.args[0])) from None
        return JSONResponse(await service.search("item", str(id), code, k, radius))


def _add_thumbnail_route(router: APIRouter, service: SearchService) -> None:
    """/thumb/{id}: the hits' pictures, for indexes of a dataset or of an image folder."""

    @router.get("/thumb/{item_id}", tags=["search"], response_class=Response,
                responses={200: {"content": {"image/png": {}}, "description": "PNG picture"},
                           404: {"model": ErrorReply, "description": "no such item, or it has no picture"}},
                summary="picture of an indexed item, by id (indexes of a dataset or of an image folder)")
    async def thumb(item_id: int):
        try:
            png = await service.thumbnail(item_id)
        except LookupError as exc:
            raise HTTPException(404, str(exc.args[0])) from None
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


def create_app(run_dir: str | Path, index_path: str | Path, *, token: str | None = None,
               limits: Limits | None = None, batch_window_s: float = 0.002, max_batch: int = 64,
               model_threads: int = 2, warm_up: bool = True, **search_params: Any) -> FastAPI:
    """The FastAPI application serving ``index_path`` with the model of ``run_dir``.

    ``token``: required on every route but /health (None: no authentication, for loopback only;
    ``vsb2net serve`` enforces that).  ``limits``: upload size, pixels, k, text length.
    ``batch_window_s``, ``max_batch``: the micro-batcher (max_batch=1: no batching).
    ``search_params``: backend search knobs (nprobe, nflip).  Raises VsbError when the run or the
    index cannot be used (missing, damaged, built by another model).
    """
    service = _load_service(run_dir, index_path, limits or Limits(), warm_up, batch_window_s=batch_window_s,
                            max_batch=max_batch, model_threads=model_threads, **search_params)
    app = FastAPI(title="vsb2net search", version="1", description=_description(service),
                  docs_url=None, redoc_url=None, lifespan=_lifespan(service))
    app.state.service = service
    _install_error_handlers(app)
    app.include_router(_server_router(service, _page()))
    app.include_router(_search_router(service))
    _install_openapi(app, token)
    _install_middleware(app, service.limits, token)
    return app
