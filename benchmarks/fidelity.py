"""Fidelity to metapredict v3 on proteins no shipped model saw: how much of the teacher a student keeps.

For a few unlabelled proteomes that no shipped model was trained on (the default distilled from E. coli,
fly, human, P. falciparum, S. pombe and yeast; ``fast`` from four of those), each predictor's scores are
compared with metapredict v3's, residue by residue: Pearson r pooled over residues, r of per-protein means,
and the mean absolute difference. No labels are needed. Rows: each idrkit model's ``pdb`` track, the
default's ``teacher`` head (its copy of v3), and metapredict v2.

    python benchmarks/fidelity.py --fasta ../shared/data/unlabelled/calbicans_SC5314.fasta \\
        ../shared/data/unlabelled/tbrucei_UP000008524.fasta ../shared/data/unlabelled/osativa_ppi.fasta

``--where`` adds, per predictor, where the differences lie: by distance to the nearest terminus, and the
share that per-protein mean offsets alone would make.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from idrkit.io import iter_records
from idrkit.predict import get_model
from idrkit.teachers import teacher_scores


def first_proteins(path: str, n: int) -> list[str]:
    seqs = []
    for rec in iter_records(path, check_duplicates=False):
        seqs.append(rec.sequence)
        if len(seqs) == n:
            break
    return seqs


def fidelity(reference: list[np.ndarray], scores: list[np.ndarray]) -> dict:
    a, b = np.concatenate(reference), np.concatenate(scores)
    return {"r_residues": float(np.corrcoef(a, b)[0, 1]),
            "r_protein_means": float(np.corrcoef([x.mean() for x in reference], [y.mean() for y in scores])[0, 1]),
            "mean_abs_diff": float(np.mean(np.abs(a - b)))}


WHERE_BINS = [(0, 5), (5, 20), (20, 60), (60, 150), (150, None)]


def where(reference: list[np.ndarray], scores: list[np.ndarray]) -> dict:
    """Where a student departs from v3: per band of distance to the nearest terminus, the share of residues,
    the share of the squared difference and r; and the share of the squared difference that per-protein
    mean offsets alone would make."""
    a, b = np.concatenate(reference), np.concatenate(scores)
    sq = (a - b) ** 2
    total = max(float(sq.sum()), 1e-12)
    term = np.concatenate([np.minimum(np.arange(len(x)), np.arange(len(x))[::-1]) for x in reference])
    bands = []
    for lo, hi in WHERE_BINS:
        k = (term >= lo) & (term < (hi if hi is not None else np.inf))
        r = float(np.corrcoef(a[k], b[k])[0, 1]) if k.sum() > 1 else float("nan")
        bands.append({"band": f"{lo}-{hi - 1}" if hi is not None else f"{lo}+", "residues": float(k.mean()),
                      "sq_diff": float(sq[k].sum()) / total, "r": r})
    offsets = sum(len(x) * (x.mean() - y.mean()) ** 2 for x, y in zip(reference, scores))
    return {"bands": bands, "offset_share": float(offsets) / total}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fasta", nargs="+", required=True)
    ap.add_argument("--proteins", type=int, default=1000, help="the first N proteins of each file")
    ap.add_argument("--models", nargs="+", default=["default", "fast", "function"])
    ap.add_argument("--where", action="store_true", help="also break the differences down by distance to the "
                    "nearest terminus, and give the share of per-protein mean offsets")
    args = ap.parse_args(argv)
    seqs = [s for path in args.fasta for s in first_proteins(path, args.proteins)]
    seqs = list(dict.fromkeys(seqs))
    print(f"{len(seqs)} proteins, {sum(map(len, seqs)):,} residues from "
          + ", ".join(Path(p).name for p in args.fasta))
    v3 = teacher_scores("metapredict-v3", seqs)
    rows = {}
    for name in args.models:
        model = get_model(name)
        rows[f"idrkit {name} (pdb track)"] = model.predict_proba(seqs, track="pdb")
        if "teacher" in getattr(model, "heads", []):
            rows[f"idrkit {name} (teacher head)"] = model._predict_index(seqs, model.heads.index("teacher"))
    rows["metapredict v2"] = teacher_scores("metapredict-v2", seqs)
    print(f"{'predictor against metapredict v3':<34} {'r (residues)':>12} {'r (protein means)':>18} {'mean |diff|':>12}")
    rows = {name: [np.asarray(s, dtype=np.float64) for s in scores] for name, scores in rows.items()}
    for name, scores in rows.items():
        f = fidelity(v3, scores)
        print(f"{name:<34} {f['r_residues']:>12.4f} {f['r_protein_means']:>18.4f} {f['mean_abs_diff']:>12.4f}")
    if args.where:
        print("\nwhere the differences are (distance to the nearest terminus, residues): share of residues / "
              "share of the squared difference / r")
        for name, scores in rows.items():
            w = where(v3, scores)
            bands = "  ".join(f"{b['band']}: {b['residues']:.3f}/{b['sq_diff']:.3f}/{b['r']:.4f}" for b in w["bands"])
            print(f"{name:<34} {bands}  per-protein mean offsets: {w['offset_share']:.3f} of the squared difference")
    return 0


if __name__ == "__main__":
    from idrkit.errors import run_main

    sys.exit(run_main(main, "fidelity.py"))
