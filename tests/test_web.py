"""HTTP API (test client), schemathesis against the OpenAPI schema, and the page in headless Chromium."""

import shutil
import socket
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from idrkit.web import Limits, create_app  # noqa: E402


@pytest.fixture(scope="module")
def app(cnn_dir):
    return create_app(str(cnn_dir), Limits(max_body_bytes=20_000, max_sequences=5, max_length=2_000))


@pytest.fixture(scope="module")
def client(app):
    return TestClient(app)


def test_predict_json(client, cnn_dir):
    from idrkit.models import load_model

    r = client.post("/predict", json={"sequences": [{"id": "a", "sequence": "MKVLAAEEPKSSPQ"}, "mkvllw*"]})
    assert r.status_code == 200
    body = r.json()
    assert [p["id"] for p in body["proteins"]] == ["a", "seq2"]
    direct = load_model(cnn_dir).predict_proba(["MKVLAAEEPKSSPQ"])[0]
    np.testing.assert_allclose(body["proteins"][0]["scores"], direct, atol=1e-4)
    assert len(body["proteins"][1]["calls"]) == 6


def test_predict_fasta_text_and_tsv(client):
    r = client.post("/predict?format=tsv", content=">x\nMKV\nLLE\n>y\nACD\n", headers={"content-type": "text/plain"})
    assert r.status_code == 200
    lines = r.text.splitlines()
    assert lines[0] == "id\tposition\tresidue\tscore\tcall" and len(lines) == 1 + 6 + 3
    r = client.post("/predict?format=csv", content="MKVLLE", headers={"content-type": "text/plain"})
    assert r.text.splitlines()[1].startswith("seq1,MKVLLE,")


@pytest.mark.parametrize("kwargs, status, message", [
    ({"json": {"sequences": [{"id": "z", "sequence": "MK1"}]}}, 422, "record 'z': invalid character '1'"),
    ({"json": {"sequences": []}}, 422, "no sequences"),
    ({"json": {"sequences": ["MK"] * 6}}, 413, "at most 5 per request"),
    ({"json": {"sequences": ["M" * 2001]}}, 413, "at most 2000"),
    ({"json": {"sequences": ["MK"], "track": "other"}}, 422, "track"),
    ({"content": "x" * 30_000, "headers": {"content-type": "text/plain"}}, 413, "larger than 20000 bytes"),
    ({"content": b"\xff\xfe", "headers": {"content-type": "text/plain"}}, 400, "not UTF-8"),
    ({"content": "{not json", "headers": {"content-type": "application/json"}}, 422, "invalid request"),
    ({"json": {"sequences": [{"id": "d", "sequence": "MK"}, {"id": "d", "sequence": "MV"}]}}, 422, "duplicate"),
])
def test_clear_4xx_errors(client, kwargs, status, message):
    r = client.post("/predict", **kwargs)
    assert r.status_code == status
    assert message in r.json()["detail"]


def test_openapi_and_health(client):
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert {"application/json", "text/plain"} <= set(body)
    assert client.get("/health").json()["status"] == "ok"
    assert "<textarea" in client.get("/").text


def test_schemathesis_finds_no_server_error(app):
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, settings

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures, calls = [], []
    for operation in schema.get_all_operations():
        op = operation.ok()
        strategy = op.as_strategy()

        @settings(max_examples=60, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call()
            calls.append(response.status_code)
            if response.status_code >= 500:
                failures.append((case, response.status_code, response.text[:200]))

        from hypothesis import given

        given(strategy)(check)()
    assert len(calls) >= 60 and any(c == 200 for c in calls)
    assert not failures, failures[:3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium is not installed")
def test_page_end_to_end_in_chromium(app, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.fill("#input", ">demo\n" + "MSEEPKSSPQESEKPAE" * 3 + "LIVWFAMLIVWFAMCYLIVWFAM" * 3)
            page.click("#run")
            page.wait_for_selector(".protein svg.profile polyline", timeout=20_000)
            assert page.inner_text(".protein h3").startswith("demo")
            assert "Disordered regions:" in page.inner_text(".regions")
            points = page.get_attribute(".protein svg.profile polyline", "points")
            assert len(points.split()) == 17 * 3 + 23 * 3
            page.screenshot(path=str(tmp_path / "page.png"))
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_track_selects_the_definition_of_disorder():
    import idrkit

    client = TestClient(create_app(None))  # the shipped default carries both tracks
    seq = "MSEEPKSSPQESEKPAEGSSKPAAEEMKVLLWAIVGLLAFSTTAQA"
    body = {}
    for track in ("pdb", "nox"):
        r = client.post("/predict", json={"sequences": [seq], "track": track})
        assert r.status_code == 200 and r.json()["track"] == track
        body[track] = np.array(r.json()["proteins"][0]["scores"])
        np.testing.assert_allclose(body[track], idrkit.predict_disorder(seq, track=track), atol=1e-4)
    assert not np.allclose(body["pdb"], body["nox"])
    r = client.post("/predict?format=tsv&track=nox", content=seq, headers={"content-type": "text/plain"})
    assert r.status_code == 200
    tsv = np.array([float(line.split("\t")[3]) for line in r.text.splitlines()[1:]])
    np.testing.assert_allclose(tsv, body["nox"], atol=1e-3)
