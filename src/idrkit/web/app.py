"""The HTTP API (``POST /predict``, OpenAPI schema at ``/openapi.json``) and the page at ``/``.

``POST /predict`` takes JSON (``{"sequences": [{"id": ..., "sequence": ...}], "track": "pdb"}``; plain
strings are accepted as sequences) or FASTA text (``text/plain``, with ``?track=pdb|nox``), and returns
scores, 0/1 calls and regions per protein as JSON, or TSV / CSV with ``?format=tsv|csv``. Requests are
limited in size, number of sequences and sequence length; bad input gets a 4xx answer with one clear message.
"""


import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import IdrkitError, require

STATIC = Path(__file__).parent / "static"


@dataclass
class Limits:
    """Request limits of the service."""

    max_body_bytes: int = 2_000_000
    max_sequences: int = 500
    max_length: int = 40_000


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
    from ..predict import get_model, predict_block
    from ..records import MAX_ID_LENGTH, Record, check_id, clean_sequence
    from ..regions import DEFAULT_MAX_GAP, DEFAULT_MIN_LENGTH, CallOptions

    limits = limits or Limits()
    est = get_model(model)

    class SequenceIn(pydantic.BaseModel):
        id: str = pydantic.Field(default="", max_length=MAX_ID_LENGTH,
                                 description="protein id (default: seq1, seq2, ...)")
        sequence: str = pydantic.Field(description="amino-acid sequence (one-letter codes)")

    class PredictRequest(pydantic.BaseModel):
        sequences: list[SequenceIn | str] = pydantic.Field(description="proteins to predict")
        track: str = pydantic.Field(default="pdb", pattern="^(pdb|nox)$", description="definition of disorder")
        threshold: float | None = pydantic.Field(default=None, ge=0, le=1, description="default: the model's")
        min_length: int = pydantic.Field(default=DEFAULT_MIN_LENGTH, ge=0, le=10_000)
        max_gap: int = pydantic.Field(default=DEFAULT_MAX_GAP, ge=0, le=10_000)

    app = fastapi.FastAPI(title="idrkit", version=__version__,
                          description="Predict intrinsically disordered regions of proteins from sequence.")

    class BadRequest(Exception):
        def __init__(self, status: int, message: str):
            self.status, self.message = status, message

    @app.exception_handler(BadRequest)
    async def _bad(request, exc: BadRequest):
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    def parse(body: bytes, content_type: str) -> tuple[list[Record], dict]:
        if len(body) > limits.max_body_bytes:
            raise BadRequest(413, f"request body is larger than {limits.max_body_bytes} bytes")
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
                      "422": {"description": "invalid input"}}})
    async def predict(request: Request, format: str = Query("json", pattern="^(json|tsv|csv)$"),
                      track: str | None = Query(None, pattern="^(pdb|nox)$",
                                                description="definition of disorder for text bodies "
                                                            "(JSON bodies name it in the body)")):
        body = await request.body()
        try:
            records, opts = parse(body, request.headers.get("content-type", ""))
        except IdrkitError as exc:
            raise BadRequest(422, str(exc)) from None
        options = CallOptions(opts.get("track", track or "pdb"), opts.get("threshold"),
                              opts.get("min_length", DEFAULT_MIN_LENGTH), opts.get("max_gap", DEFAULT_MAX_GAP))
        if options.track not in est.tracks:
            raise BadRequest(422, f"this model has no '{options.track}' track")
        preds, _ = predict_block(est, records, options)
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
        return {"status": "ok", "version": __version__, "tracks": list(est.tracks)}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return (STATIC / "index.html").read_text()

    return app


def serve(model: str | None = None, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the service with uvicorn."""
    uvicorn = require("uvicorn", "web")
    uvicorn.run(create_app(model), host=host, port=port, log_level="info")
