"""Load on the web service: concurrent requests, and /health while a maximum-size request runs.

Starts ``idrkit serve`` (the shipped default model unless ``--model``) on a free local port, then
1. sends ``--requests`` concurrent POST /predict requests of ``--proteins`` proteins each (real proteins
   from ``--fasta``), and reports requests/s, residues/s, p50/p99 latency, errors (any answer but 200) and
   the server's resident memory (main process, and with its workers) before and after;
2. sends one maximum-size request (48 proteins of 40,000 residues, just under the 2 MB body limit) and
   polls /health every 50 ms while it runs, reporting the slowest /health answer.

    python benchmarks/web_load.py --fasta ../shared/data/unlabelled/yeast_UP000002311.fasta
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the prediction workers)."""
    total = rss_mb(pid)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                total += rss_mb(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    return total


def post(url: str, body: bytes, timeout: float = 300) -> tuple[int, float]:
    t0 = time.perf_counter()
    req = urllib.request.Request(url, data=body, headers={"content-type": "text/plain"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        status = e.code
    except OSError:
        status = -1
    return status, time.perf_counter() - t0


def main(argv=None) -> int:
    from idrkit.io import iter_records

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fasta", required=True, help="proteins to send (the first requests * proteins)")
    ap.add_argument("--model", default=None)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--proteins", type=int, default=10)
    ap.add_argument("--workers", type=int, default=0)
    args = ap.parse_args(argv)

    records = []
    for rec in iter_records(args.fasta):
        if len(rec) <= 40_000:
            records.append(rec)
        if len(records) == args.requests * args.proteins:
            break
    bodies = [("".join(f">{r.id}\n{r.sequence}\n" for r in records[i:i + args.proteins])).encode()
              for i in range(0, len(records), args.proteins)]
    residues = sum(len(r) for r in records)
    port = free_port()
    cmd = [sys.executable, "-m", "idrkit.cli", "serve", "--port", str(port), "--workers", str(args.workers)]
    if args.model:
        cmd += ["--model", args.model]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(400):
            try:
                health = json.loads(urllib.request.urlopen(url + "/health", timeout=1).read())
                break
            except OSError:
                time.sleep(0.05)
        post(url + "/predict", b">warm\nMKVLAAEEPKSSPQ\n")  # start the workers
        before, before_all = rss_mb(server.pid), tree_rss_mb(server.pid)
        results: list[tuple[int, float]] = []
        start = threading.Barrier(len(bodies) + 1)

        def send(body):
            start.wait()
            results.append(post(url + "/predict?format=csv", body))

        threads = [threading.Thread(target=send, args=(b,)) for b in bodies]
        for t in threads:
            t.start()
        start.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        after, after_all = rss_mb(server.pid), tree_rss_mb(server.pid)
        lat = np.array([r[1] for r in results])
        errors = sum(1 for r in results if r[0] != 200)
        print(f"server: {health['workers']} prediction workers; {len(bodies)} concurrent requests of {args.proteins} "
              f"proteins ({residues} residues)")
        print(f"requests/s {len(bodies) / wall:.1f}  residues/s {residues / wall:,.0f}  p50 {np.median(lat):.2f} s  "
              f"p99 {np.percentile(lat, 99):.2f} s  errors {errors}")
        print(f"server memory: {before:.0f} MB before, {after:.0f} MB after (with workers {before_all:.0f} MB, "
              f"{after_all:.0f} MB)")

        rng = np.random.default_rng(0)
        aa = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
        big = "".join(f">p{i}\n{''.join(rng.choice(aa, 40_000))}\n" for i in range(48)).encode()
        answer = {}
        worker = threading.Thread(target=lambda: answer.update(result=post(url + "/predict?format=csv", big)))
        worker.start()
        health_lat = []
        while worker.is_alive():
            t = time.perf_counter()
            urllib.request.urlopen(url + "/health", timeout=30).read()
            health_lat.append(time.perf_counter() - t)
            time.sleep(0.05)
        worker.join()
        status, seconds = answer["result"]
        print(f"maximum request (48 x 40,000 residues, {len(big)} bytes): status {status}, {seconds:.1f} s; /health "
              f"polled {len(health_lat)} times meanwhile, slowest {max(health_lat) * 1000:.0f} ms, median "
              f"{np.median(health_lat) * 1000:.0f} ms")
    finally:
        server.terminate()
        server.wait(timeout=20)
    return 0 if errors == 0 and status == 200 else 1


if __name__ == "__main__":
    from idrkit.errors import run_main

    sys.exit(run_main(main, "web_load.py"))
