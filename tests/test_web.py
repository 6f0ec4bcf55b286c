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
    ({"json": {"sequences": [{"id": "a\tb", "sequence": "MK"}]}}, 422, "control character"),
    ({"json": {"sequences": [{"id": "x" * 1001, "sequence": "MK"}]}}, 422, "at most 1000 characters"),
    ({"json": {"sequences": ["MK"], "threshold": 2}}, 422, "threshold"),
    ({"content": ">a\tb\nMK\n>a\x01\nMK\n", "headers": {"content-type": "text/plain"}}, 422, "control character"),
    ({"content": "MKV", "headers": {"content-type": "image/png"}}, 415, "not accepted"),
])
def test_clear_4xx_errors(small_server, kwargs, status, message):
    """Against a real server (uvicorn in a subprocess) with small limits."""
    import json

    if "json" in kwargs:
        body, kind = json.dumps(kwargs["json"]).encode(), "application/json"
    else:
        content = kwargs["content"]
        body, kind = content.encode() if isinstance(content, str) else content, kwargs["headers"]["content-type"]
    code, _, answer = _post(small_server + "/predict", body, kind)
    assert code == status
    assert message in json.loads(answer)["detail"]


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
            # the track selector offers every track of the served model
            page.wait_for_function("document.querySelectorAll('#track option').length === 2")
            assert page.eval_on_selector_all("#track option", "os => os.map(o => o.value)") == ["pdb", "nox"]
            # pasted text: one profile point per residue
            page.fill("#input", ">demo\n" + "MSEEPKSSPQESEKPAE" * 3 + "LIVWFAMLIVWFAMCYLIVWFAM" * 3)
            page.click("#run")
            page.wait_for_selector(".protein svg.profile polyline", timeout=20_000)
            assert page.inner_text(".protein h3").startswith("demo")
            points = page.get_attribute(".protein svg.profile polyline", "points")
            assert len(points.split()) == 17 * 3 + 23 * 3
            # the example button fills two real proteins; nox track
            page.click("#example")
            assert page.input_value("#input").count(">") == 2
            page.select_option("#track", "nox")
            page.click("#run")
            page.wait_for_function("document.querySelectorAll('.protein').length === 2")
            first = page.query_selector(".protein")
            assert first.query_selector("h3").inner_text().startswith("sp|P09007|SRD1_YEAST")
            summary = first.query_selector(".summary").inner_text()
            assert "% called (nox)" in summary and "region" in summary
            # the regions table holds one row per region named in the regions line
            rows = first.query_selector_all("table.regions-table tr")
            named = first.query_selector(".regions").inner_text().split(": ", 1)[1]
            assert len(rows) - 1 == (0 if named == "none" else len(named.split(", ")))
            if len(rows) > 1:
                start, end, length = (int(c.inner_text()) for c in rows[1].query_selector_all("td")[:3])
                assert length == end - start + 1 and f"{start}-{end}" in named
            # hovering the profile reads out the residue under the pointer
            box = first.query_selector("svg.profile").bounding_box()
            page.mouse.move(box["x"] + 30 * box["width"] / 900 + 0.5, box["y"] + box["height"] / 2)
            readout = first.query_selector(".readout").inner_text()
            assert readout.startswith("position 1, residue M, score ")
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


# ------------------------------------------------------------------ a real server (uvicorn) in a subprocess


def _start(args):
    import subprocess
    import sys
    import urllib.request

    port = _free_port()
    proc = subprocess.Popen([sys.executable, *args, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            urllib.request.urlopen(url + "/health", timeout=1)
            break
        except OSError:
            time.sleep(0.05)
    return url, proc


@pytest.fixture(scope="module")
def small_server(cnn_dir):
    code = ("import sys, uvicorn; from idrkit.web import Limits, create_app; "
            f"uvicorn.run(create_app({str(cnn_dir)!r}, Limits(max_body_bytes=20_000, max_sequences=5, "
            "max_length=2_000, workers=1)), host='127.0.0.1', port=int(sys.argv[1]), log_level='warning')")
    url, proc = _start(["-c", code])
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def _rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.fixture(scope="module")
def server(cnn_dir):
    url, proc = _start(["-m", "idrkit.cli", "serve", "--model", str(cnn_dir), "--workers", "1", "--max-pending", "2",
                        "--port"])
    yield url, proc
    proc.terminate()
    proc.wait(timeout=10)


def _post(url, body: bytes, content_type="text/plain", timeout=60):
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=body, headers={"content-type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def test_chunked_upload_over_the_limit_is_refused_while_reading(server):
    import http.client
    import json
    import urllib.parse
    import urllib.request

    url, proc = server
    before = _rss_mb(proc.pid)
    conn = http.client.HTTPConnection(urllib.parse.urlparse(url).netloc, timeout=30)
    conn.putrequest("POST", "/predict")
    conn.putheader("content-type", "text/plain")
    conn.putheader("transfer-encoding", "chunked")
    conn.endheaders()
    chunk = b">x\n" + b"M" * (1 << 20)
    sent = 0
    try:
        for _ in range(200):  # up to 200 MB, far beyond the 2 MB limit
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        conn.send(b"0\r\n\r\n")
    except OSError:
        pass  # the server answered and closed the connection before we were done
    try:
        resp = conn.getresponse()
    except OSError:  # closing with part of the body unread makes TCP reset, which can overtake the answer
        resp = None
    if resp is not None:
        assert resp.status == 413 and "larger than 2000000 bytes" in json.loads(resp.read())["detail"]
    conn.close()
    assert _rss_mb(proc.pid) - before < 60, "the server buffered the body"
    # declared too large: refused at once, before any of the body is read (the body is never sent, so the
    # answer always arrives)
    conn = http.client.HTTPConnection(urllib.parse.urlparse(url).netloc, timeout=30)
    conn.putrequest("POST", "/predict")
    conn.putheader("content-type", "text/plain")
    conn.putheader("content-length", str(3_000_000))
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 413 and "larger than 2000000 bytes" in json.loads(resp.read())["detail"]
    conn.close()
    with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=10) as r:
        assert r.status == 200


def test_unsupported_content_type_and_bad_query_get_one_message(server):
    import json

    url, _ = server
    status, _, body = _post(url + "/predict", b"a=1", "application/x-www-form-urlencoded")
    assert status == 415
    assert json.loads(body)["detail"] == ("content type 'application/x-www-form-urlencoded' is not accepted; "
                                          "send one of application/json, text/plain, text/x-fasta")
    status, _, body = _post(url + "/predict?format=xml", b"MKV")
    assert status == 422 and json.loads(body)["detail"].startswith("invalid request: query.format:")


def test_health_stays_quick_while_a_maximum_request_runs(server):
    import json
    import urllib.request

    url, _ = server
    rng = np.random.default_rng(0)
    aa = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    big = "".join(f">p{i}\n{''.join(rng.choice(aa, 40_000))}\n" for i in range(48)).encode()
    assert len(big) < 2_000_000
    result = {}
    worker = threading.Thread(target=lambda: result.update(answer=_post(url + "/predict?format=csv", big)))
    worker.start()
    latencies = []
    while worker.is_alive():
        t0 = time.perf_counter()
        health = json.loads(urllib.request.urlopen(url + "/health", timeout=5).read())
        latencies.append(time.perf_counter() - t0)
        time.sleep(0.05)
    worker.join()
    assert result["answer"][0] == 200 and result["answer"][2].count(b"\n") == 49
    assert len(latencies) >= 3 and max(latencies) < 1.0, latencies
    assert health["workers"] == 1


def test_a_full_queue_answers_503_with_retry_after(server):
    url, _ = server
    rng = np.random.default_rng(1)
    aa = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    body = "".join(f">p{i}\n{''.join(rng.choice(aa, 40_000))}\n" for i in range(20)).encode()
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(_post(url + "/predict?format=csv", body)))
               for _ in range(5)]
    for t in threads:
        t.start()
        time.sleep(0.02)
    for t in threads:
        t.join()
    statuses = sorted(a[0] for a in answers)
    assert 200 in statuses and 503 in statuses, statuses
    busy = next(a for a in answers if a[0] == 503)
    assert busy[1].get("retry-after") == "1" and b"busy" in busy[2]


def test_random_and_mutated_bodies_never_give_a_server_error(client):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    valid = b'{"sequences": [{"id": "a", "sequence": "MKVLAAEEPK"}, "MKV"], "track": "nox", "threshold": 0.4}'

    def mutate(data, edits):
        out = bytearray(data)
        for kind, pos, value in edits:
            pos %= max(len(out), 1)
            if kind == 0 and out:
                out[pos] = value
            elif kind == 1 and out:
                del out[pos]
            else:
                out.insert(pos, value)
        return bytes(out)

    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(body=st.one_of(st.binary(max_size=200), st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 500), st.integers(0, 255)), min_size=1, max_size=6).map(
        lambda edits: mutate(valid, edits))), kind=st.sampled_from(["application/json", "text/plain"]))
    def check(body, kind):
        r = client.post("/predict", content=body, headers={"content-type": kind})
        assert r.status_code in (200, 400, 413, 422), (body, r.status_code, r.text[:200])
        if r.status_code != 200:
            assert r.json()["detail"]

    check()
