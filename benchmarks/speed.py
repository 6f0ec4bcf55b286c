"""Whole-process speed and memory of idrkit and metapredict on proteomes, and their accuracy, in one run.

For each FASTA file and each predictor, one fresh process does everything a user's run does, imports
included: ``idrkit predict FASTA -o OUT.csv`` (default options: every core for a large input) for the idrkit
models, and for metapredict a Python process that imports it, reads the FASTA and calls its batched API
``predict_disorder(list_of_sequences, version=...)``. Wall time, residues per second, and peak memory (the
largest process, and all processes of the run together, sampled every 20 ms) are printed. Accuracy comes
from the validation file: AUC, AP, F-max, and F1 and MCC of each predictor's own 0/1 calls (idrkit: the calls
it writes; metapredict: score >= 0.5).

    python benchmarks/speed.py --fasta ../shared/data/unlabelled/yeast_UP000002311.fasta \\
        ../shared/data/unlabelled/human_nr95.fasta --valid ../shared/data/caid2_disorder_pdb.fasta
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


METAPREDICT = r"""
import sys
import metapredict as meta
path, version = sys.argv[1], sys.argv[2]
seqs, cur = [], []
for line in open(path):
    if line.startswith(">"):
        if cur:
            seqs.append("".join(cur))
        cur = []
    else:
        cur.append(line.strip().upper().rstrip("*"))
if cur:
    seqs.append("".join(cur))
table = str.maketrans({"B": "N", "Z": "Q", "J": "L", "U": "C", "O": "K", "X": "A"})
seqs = [s.translate(table) for s in seqs]
out = meta.predict_disorder(seqs, version=version, round_values=False, show_progress_bar=False)
print(len(out))
"""

WRAP = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, "
        "stderr=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants."""
    parent = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
    todo, total = [pid], 0.0
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
        todo += [c for c, pp in parent.items() if pp == p]
    return total


def timed(cmd: list[str]) -> tuple[float, float, float]:
    """(seconds, largest process MB, all processes MB) of a command run to its end."""
    proc = subprocess.Popen([sys.executable, "-c", WRAP, *cmd], stdout=subprocess.PIPE, text=True)
    peak = [0.0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss_mb(proc.pid) - 9)  # less the wrapper's own interpreter
            time.sleep(0.02)

    t0 = time.perf_counter()
    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    out, _ = proc.communicate()
    seconds = time.perf_counter() - t0
    watcher.join()
    if proc.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return seconds, int(out.strip().splitlines()[-1]) / 1024, peak[0]


def unique_ids(path: str, tmp: Path) -> tuple[str, int, int]:
    """The FASTA itself, or a copy whose repeated ids get a suffix (idrkit refuses repeated ids); with the
    number of residues and of renamed records."""
    from idrkit.io import iter_records

    seen: dict[str, int] = {}
    records = []
    for r in iter_records(path, check_duplicates=False):
        seen[r.id] = seen.get(r.id, 0) + 1
        records.append((r.id if seen[r.id] == 1 else f"{r.id}~{seen[r.id]}", r.sequence))
    renamed = sum(n - 1 for n in seen.values())
    if renamed:
        path = str(tmp / Path(path).name)
        Path(path).write_text("".join(f">{rid}\n{seq}\n" for rid, seq in records))
    return path, sum(len(seq) for _, seq in records), renamed


def accuracy(valid: str, predictors: dict[str, list[str]], tmp: Path) -> dict[str, dict]:
    from idrkit.io import read_predictions, read_records
    from idrkit.metrics import match, pooled_metrics
    from idrkit.teachers import get_teacher

    refs = {r.id: r for r in read_records(valid, require_labels=True)}
    rows = {}
    for name, cmd in predictors.items():
        if cmd[0] == "idrkit":
            out = tmp / f"valid-{name.replace(' ', '_')}.tsv"
            model = cmd[1]
            subprocess.run([sys.executable, "-m", "idrkit.cli", "predict", valid, "-o", str(out), "--model", model],
                           check=True, stderr=subprocess.DEVNULL)
            ids, labels, scores, calls = match(refs, read_predictions(out))
        else:
            version = cmd[1]
            seqs = [r.sequence for r in refs.values()]
            scores = get_teacher("metapredict-v3" if version == "V3" else "metapredict-v2")(seqs)
            labels = [r.labels for r in refs.values()]
            calls = [s >= 0.5 for s in scores]
        rows[name] = pooled_metrics(labels, scores, calls=calls)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fasta", nargs="+", required=True)
    ap.add_argument("--valid", default=None)
    ap.add_argument("--models", nargs="+", default=["default", "fast"], help="idrkit models (names or folders)")
    ap.add_argument("--metapredict", nargs="*", default=["V3", "V2"])
    ap.add_argument("--format", default="csv", help="idrkit's output format (csv: calls; tsv: every score)")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    predictors = {f"idrkit {m}": ["idrkit", m] for m in args.models}
    predictors.update({f"metapredict {v}": ["metapredict", v] for v in args.metapredict})
    figures: dict = {"speed": {}, "accuracy": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for original in args.fasta:
            fasta, n, renamed = unique_ids(original, tmp)
            note = f" ({renamed} repeated ids renamed in a copy)" if renamed else ""
            print(f"\n{Path(fasta).name}: {n:,} residues{note}", flush=True)
            print(f"{'predictor':<18} {'seconds':>8} {'residues/s':>11} {'largest MB':>11} {'all MB':>8}")
            rows = {}
            for name, spec in predictors.items():
                if spec[0] == "idrkit":
                    cmd = [sys.executable, "-m", "idrkit.cli", "predict", fasta, "-o", str(tmp / f"out.{args.format}"),
                           "--model", spec[1]]
                else:
                    cmd = [sys.executable, "-c", METAPREDICT, fasta, spec[1]]
                seconds, largest, together = timed(cmd)
                rows[name] = {"seconds": seconds, "residues_per_s": n / seconds, "largest_mb": largest,
                              "all_mb": together}
                print(f"{name:<18} {seconds:>8.1f} {n / seconds:>11,.0f} {largest:>11.0f} {together:>8.0f}", flush=True)
            figures["speed"][Path(fasta).name] = rows
            base = {k: v["seconds"] for k, v in rows.items()}
            for ref in ("metapredict V3", "metapredict V2"):
                if ref in base:
                    print("  speed-up over " + ref + ": " + ", ".join(
                        f"{k} {base[ref] / v:.1f}x" for k, v in base.items() if k.startswith("idrkit")))
        if args.valid:
            acc = accuracy(args.valid, predictors, tmp)
            figures["accuracy"] = acc
            print(f"\naccuracy on {Path(args.valid).name} (F1 and MCC of each predictor's own calls)")
            print(f"{'predictor':<18} {'AUC':>7} {'AP':>7} {'F-max':>7} {'F1':>7} {'MCC':>7}")
            for name, m in acc.items():
                print(f"{name:<18} {m['auc']:>7.4f} {m['ap']:>7.4f} {m['fmax']:>7.4f} {m['f1']:>7.4f} {m['mcc']:>7.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1, default=float))
    return 0


if __name__ == "__main__":
    from idrkit.errors import run_main

    sys.exit(run_main(main, "speed.py"))
