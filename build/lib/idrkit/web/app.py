"""The HTTP API (``POST /predict``, OpenAPI schema at ``/openapi.json``) and the page at ``/``.

``POST /predict`` takes JSON (``{"sequences": [{"id": ..., "sequence": ...}], "track": "pdb"}``; plain
strings are accepted as sequences) or FASTA text (``text/plain``, with ``?track=``), and returns
scores, 0/1 calls and regions per protein as JSON, or TSV / CSV with ``?format=tsv|csv``. Requests are
limited in size (checked while the body is read), number of sequences and sequence length; bad input gets a
4xx answer with one clear message. Predictions run in a pool of worker processes (one BLAS thread each), off
the event loop, so ``/health`` and small requests stay quick while a large one runs; when the pool has
``max_pending`` requests already, a new one is answered 503 with ``Retry-After``.
"""


import asyncio
import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import IdrkitError, require

STATIC = Path(__file__).parent / "static"
ACCEPTED_TYPES = ("application/json", "text/plain", "text/x-fasta")


@dataclass
class Limits:
    """Request limits of the service, and its pool of prediction workers."""

    max_body_bytes: int = 2_000_000
    max_sequences: int = 500
    max_length: int = 40_000
    workers: int = 0  # worker processes; 0: every core this process may use
    max_pending: int = 256  # requests predicted or waiting at once; more are answered 503


class PredictionPool:
    """Worker processes (spawned, one BLAS thread each) that predict blocks off the event loop.

    The processes start with the first request after the pool is created or closed (a server's shutdown
    closes it; an application object may be served again).
    """

    def __init__(self, model: str | None, workers: int):
        from ..models import model_folder

        self.model = str(model_folder(model))
        self.workers = workers
        self.pending = 0
        self._executor = None

    def _pool(self):
        if self._executor is None:
            import concurrent.futures as cf
            import multiprocessing as mp

            from ..predict import init_worker

            self._executor = cf.ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"),
                                                    initializer=init_worker, initargs=(os.getpid(),))
        return self._executor

    async def predict(self, records, options):
        from ..predict import predict_pairs

        self.pending += 1
        try:
            future = self._pool().submit(predict_pairs, self.model, [(r.id, r.sequence) for r in records], options)
            return await asyncio.wrap_future(future)
        finally:
            self.pending -= 1

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def create_app(model: str | None = None, limits: Limits | None = None):
    """The FastAPI application serving ``model`` (default: the shipped default model)."""
    fastapi = require("fastapi", "web")
    pydantic = require("pydantic", "web")
    from fastapi import Query, Request
    from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

    from .._version import __version__
    from ..io.formats import OutputFormat, json_text
    from ..io.readers import records_from_text
    from ..models.base import resolve_threshold
    from ..predict import get_model
    from ..records import MAX_ID_LENGTH, TRACKS, Record, check_id, clean_sequence
    from ..regions import DEFAULT_MAX_GAP, DEFAULT_MIN_LENGTH, CallOptions

    from ..models._runtime import available_cores

    limits = limits or Limits()
    est = get_model(model)
    track_pattern = "^(" + "|".join(TRACKS) + ")$"
    workers = limits.workers or available_cores()
    max_pending = limits.max_pending
    pool = PredictionPool(model, workers)

    class SequenceIn(pydantic.BaseModel):
        id: str = pydantic.Field(default="", max_length=MAX_ID_LENGTH,
                                 description="protein id (default: seq1, seq2, ...)")
        sequence: str = pydantic.Field(description="amino-acid sequence (one-letter codes)")

    class PredictRequest(pydantic.BaseModel):
        sequences: list[SequenceIn | str] = pydantic.Field(description="proteins to predict")
        track: str = pydantic.Field(default="pdb", pattern=track_pattern,
                                    description="what to predict: " + ", ".join(TRACKS))
        threshold: float | None = pydantic.Field(default=None, ge=0, le=1, description="default: the model's")
        min_length: int = pydantic.Field(default=DEFAULT_MIN_LENGTH, ge=0, le=10_000)
        max_gap: int = pydantic.Field(default=DEFAULT_MAX_GAP, ge=0, le=10_000)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        pool.close()

    app = fastapi.FastAPI(title="idrkit", version=__version__, lifespan=lifespan,
                          description="Predict intrinsically disordered regions of proteins from sequence.")
    app.state.pool = pool

    class BadRequest(Exception):
        def __init__(self, status: int, message: str):
            self.status, self.message = status, message

    @app.exception_handler(BadRequest)
    async def _bad(request, exc: BadRequest):
        headers = {"Retry-After": "1"} if exc.status == 503 else None
        return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=headers)

    @app.exception_handler(fastapi.exceptions.RequestValidationError)
    async def _invalid(request, exc):
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err.get("loc", ()))
        return JSONResponse({"detail": f"invalid request: {where}: {err.get('msg')}"}, status_code=422)

    too_large = f"request body is larger than {limits.max_body_bytes} bytes"

    async def read_body(request) -> bytes:
        """The body, refused (413) as soon as it is known to pass the limit: declared, then as read."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limits.max_body_bytes:
            raise BadRequest(413, too_large)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limits.max_body_bytes:
                raise BadRequest(413, too_large)
            chunks.append(chunk)
        return b"".join(chunks)

    def parse(body: bytes, content_type: str) -> tuple[list[Record], dict]:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest(400, "request body is not UTF-8 text") from None
        options: dict[str, Any] = {}
        if "json" in content_type:
            try:
                req = PredictRequest.model_validate_json(text)
            except pydantic.ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(x) for x in err.get("loc", ()))
                raise BadRequest(422, f"invalid request: {where}: {err.get('msg')}") from None
            options = {"track": req.track, "threshold": req.threshold, "min_length": req.min_length,
                       "max_gap": req.max_gap}
            raw = [(s.id if isinstance(s, SequenceIn) else "", s.sequence if isinstance(s, SequenceIn) else s)
                   for s in req.sequences]
            if len(raw) > limits.max_sequences:
                raise BadRequest(413, f"{len(raw)} sequences; at most {limits.max_sequences} per request")
            records, seen = [], set()
            for i, (rid, seq) in enumerate(raw, 1):
                rid = rid.strip() or f"seq{i}"
                if rid in seen:
                    raise BadRequest(422, f"record '{rid}': duplicate id")
                seen.add(rid)
                if len(seq) > limits.max_length:
                    raise BadRequest(413, f"record '{rid}': {len(seq)} residues; at most {limits.max_length}")
                records.append(Record(check_id(rid, "request"), clean_sequence(seq, rid, "request")))
        else:
            if not text.lstrip("\ufeff").lstrip().startswith(">"):
                text = ">seq1\n" + text  # a bare sequence
            records = []
            for rec in records_from_text(text, "fasta", "request"):
                if len(records) >= limits.max_sequences:
                    raise BadRequest(413, f"more than {limits.max_sequences} sequences per request")
                if len(rec) > limits.max_length:
                    raise BadRequest(413, f"record '{rec.id}': {len(rec)} residues; at most {limits.max_length}")
                records.append(rec)
        if not records:
            raise BadRequest(422, "no sequences in the request")
        return records, options

    request_schema = PredictRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = request_schema.pop("$defs", {})

    @app.post("/predict", summary="Predict disorder", openapi_extra={
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": request_schema},
            "text/plain": {"schema": {"type": "string", "description": "FASTA text or one bare sequence"}}}},
        "responses": {"200": {"description": "scores, calls and regions per protein"},
                      "400": {"description": "unreadable body"}, "413": {"description": "over a limit"},
                      "415": {"description": "unsupported content type"}, "422": {"description": "invalid input"},
                      "503": {"description": "busy: retry after the Retry-After seconds"}}})
    async def predict(request: Request, format: str = Query("json", pattern="^(json|tsv|csv)$"),
                      track: str | None = Query(None, pattern=track_pattern,
                                                description="definition of disorder for text bodies "
                                                            "(JSON bodies name it in the body)")):
        content_type = request.headers.get("content-type", "text/plain").split(";")[0].strip().lower()
        if content_type not in ACCEPTED_TYPES:
            raise BadRequest(415, f"content type '{content_type}' is not accepted; send one of "
                                  f"{', '.join(ACCEPTED_TYPES)}")
        if pool.pending >= max_pending:
            raise BadRequest(503, "the service is busy; retry in a moment")
        body = await read_body(request)
        try:
            records, opts = parse(body, content_type)
            options = CallOptions(opts.get("track", track or "pdb"), opts.get("threshold"),
                                  opts.get("min_length", DEFAULT_MIN_LENGTH), opts.get("max_gap", DEFAULT_MAX_GAP))
        except IdrkitError as exc:
            raise BadRequest(422, str(exc)) from None
        if options.track not in est.tracks:
            raise BadRequest(422, f"this model has no '{options.track}' track")
        preds, _ = await pool.predict(records, options)
        if format == "json":
            head = json.dumps({"model": model or "default", "track": options.track,
                               "threshold": resolve_threshold(est, options.track, options.threshold)})
            body = head[:-1] + ', "proteins": [' + ", ".join(json_text(p) for p in preds) + "]}"
            return Response(body, media_type="application/json")
        return PlainTextResponse(OutputFormat(format).text(preds, {}))

    schema = app.openapi()
    schema.setdefault("components", {}).setdefault("schemas", {}).update(defs)

    @app.get("/health", summary="Service status")
    async def health():
        return {"status": "ok", "version": __version__, "model": model or "default", "tracks": list(est.tracks),
                "workers": workers, "pending": pool.pending}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return (STATIC / "index.html").read_text()

    return app


def serve(model: str | None = None, host: str = "127.0.0.1", port: int = 8000, limits: Limits | None = None) -> None:
    """Run the service with uvicorn."""
    uvicorn = require("uvicorn", "web")
    uvicorn.run(create_app(model, limits), host=host, port=port, log_level="info")
