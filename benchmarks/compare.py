"""Accuracy and speed of idrkit models beside metapredict, in one run.

Each predictor runs in its own child process (so that time to first prediction and peak memory are its
own): it imports its package, loads its model, predicts every sequence of the evaluation file and reports
scores, load time, prediction time and peak resident memory. The parent pools the metrics (CAID style)
and prints one table; ``--chart`` writes a bar chart and ``--markdown`` the table in Markdown.

    python benchmarks/compare.py --ref ../shared/data/caid2_disorder_pdb.fasta \
        --model default --model runs/w2v --metapredict V3 V2 --chart docs/compare.png
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
kind, name, ref, out, threads = sys.argv[1:6]
import numpy as np
seqs = []
from idrkit.io import read_records
recs = read_records(ref)
seqs = [r.sequence for r in recs]
t_read = time.perf_counter()
if kind == "idrkit":
    import idrkit
    from idrkit.predict import get_model
    from idrkit.models.base import resolve_threshold
    model = get_model(None if name == "default" else name)
    threshold = resolve_threshold(model)
    predict = lambda s: model.predict_proba(s)
else:
    import metapredict as meta
    threshold = 0.5
    def predict(s):
        res = meta.predict_disorder(s, version=name, round_values=False, show_progress_bar=False)
        by_seq = {item[0]: item[-1] for item in res}
        return [np.asarray(by_seq[x]) for x in s]
first = predict([seqs[0]])
t_first = time.perf_counter()
t1 = time.perf_counter()
scores = predict(seqs)
t2 = time.perf_counter()
np.savez(out, *[np.asarray(s, dtype=np.float32) for s in scores])
print(json.dumps({"first_prediction_s": (t_first - t0) - (t_read - t0), "predict_s": t2 - t1,
                  "threshold": threshold, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_child(kind: str, name: str, ref: str, threads: int) -> tuple[dict, list[np.ndarray]]:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "scores.npz")
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        proc = subprocess.run([sys.executable, "-c", CHILD, kind, name, ref, out, str(threads)],
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise SystemExit(f"{kind} {name} failed:\n{proc.stderr[-3000:]}")
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        with np.load(out) as z:
            scores = [z[f"arr_{i}"] for i in range(len(z.files))]
    return info, scores


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", required=True, help="labelled evaluation file")
    ap.add_argument("--model", action="append", default=[], help="'default' or a model folder (repeatable)")
    ap.add_argument("--metapredict", nargs="*", default=[], help="metapredict versions to run, e.g. V3 V2")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chart", default=None, help="write a bar chart (PNG or SVG) here")
    ap.add_argument("--markdown", default=None, help="write the table as Markdown here")
    ap.add_argument("--paired", type=int, default=0, metavar="N",
                    help="N paired bootstrap resamplings of proteins: AUC and AP of each idrkit model minus "
                         "the first metapredict version, with 95%% intervals")
    args = ap.parse_args(argv)

    from idrkit.metrics import pooled_metrics
    from idrkit.io import read_records

    recs = read_records(args.ref, require_labels=True)
    labels = [r.labels for r in recs]
    n_res = sum(len(r) for r in recs)
    rows = {}
    runs = [("idrkit", m) for m in args.model] + [("metapredict", v) for v in args.metapredict]
    for kind, name in runs:
        label = f"idrkit:{name}" if kind == "idrkit" else f"metapredict {name}"
        info, scores = run_child(kind, name, args.ref, args.threads)
        m = pooled_metrics(labels, scores, threshold=info["threshold"])
        rows[label] = {**m, "res_per_s": n_res / info["predict_s"], **info, "scores": scores}
        print(f"done: {label}", file=sys.stderr)
    cols = [("auc", "AUC"), ("ap", "AP"), ("fmax", "F-max"), ("mcc", "MCC"), ("competition_f1", "F1"),
            ("threshold", "thr"), ("res_per_s", "res/s"), ("first_prediction_s", "first s"),
            ("peak_mb", "peak MB")]
    print(f"reference: {args.ref} ({len(recs)} proteins, {n_res} residues, {sum(len(l[l >= 0]) for l in labels)} "
          f"labelled); threads: {args.threads}")
    header = f"{'predictor':<28}" + "".join(f"{c[1]:>10}" for c in cols)
    print(header)
    print("-" * len(header))
    md = ["| predictor | " + " | ".join(c[1] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, r in rows.items():
        cells = [f"{r[k]:.0f}" if k in ("res_per_s", "peak_mb") else f"{r[k]:.4f}" if k in ("auc", "ap")
                 else f"{r[k]:.3f}" for k, _ in cols]
        print(f"{name:<28}" + "".join(f"{c:>10}" for c in cells))
        md.append(f"| {name} | " + " | ".join(cells) + " |")
    base = next((n for n in rows if n.startswith("metapredict")), None)
    if args.paired and base:
        from idrkit.metrics import paired_bootstrap

        print(f"\npaired bootstrap over proteins ({args.paired} resamplings): model minus {base}")
        for name, r in rows.items():
            if not name.startswith("idrkit"):
                continue
            d = paired_bootstrap(labels, r["scores"], rows[base]["scores"], n=args.paired)
            text = "  ".join(f"{k.upper()} {v['diff']:+.4f} [{v['low']:+.4f}, {v['high']:+.4f}] higher in "
                             f"{v['a_higher']:.0%}" for k, v in d.items())
            print(f"{name:<28}{text}")
            md.append(f"\n{name} minus {base}: {text}")
    if args.markdown:
        Path(args.markdown).write_text("\n".join(md) + "\n")
    if args.chart:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        names = list(rows)
        x = np.arange(len(names))
        for i, (k, lab) in enumerate([("auc", "AUC"), ("ap", "AP"), ("fmax", "F-max")]):
            axes[0].bar(x + (i - 1) * 0.27, [rows[n][k] for n in names], 0.27, label=lab)
        axes[0].set_xticks(x, names, rotation=20, ha="right")
        axes[0].set_ylim(0.5, 1)
        axes[0].legend()
        axes[0].set_title("accuracy on " + Path(args.ref).name)
        axes[1].bar(x, [rows[n]["res_per_s"] for n in names], color="gray")
        axes[1].set_xticks(x, names, rotation=20, ha="right")
        axes[1].set_title(f"residues per second ({args.threads} threads)")
        fig.tight_layout()
        fig.savefig(args.chart)
    return 0


if __name__ == "__main__":
    from idrkit.errors import run_main

    sys.exit(run_main(main, "compare.py"))
