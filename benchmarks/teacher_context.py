"""How far metapredict v3 looks: its scores for the middle of a protein, with and without the rest of it.

For proteins longer than 800 residues of a proteome, v3 scores the whole sequence and a crop of it: the
middle 100 residues with ``H`` residues on each side. If v3 looked only ``H`` residues away, both scores of
the middle 100 would agree (r = 1). Also printed: r after removing each protein's mean difference (how much
of the change is a shift of the whole protein's scores) and the spread of that shift. A CNN whose receptive
field is a few hundred residues cannot follow what v3 takes from further away; this measures that ceiling.

    python benchmarks/teacher_context.py --fasta ../shared/data/unlabelled/calbicans_SC5314.fasta --proteins 150
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from idrkit.errors import InputError, run_main
from idrkit.io import iter_records
from idrkit.records import STANDARD


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fasta", required=True)
    ap.add_argument("--proteins", type=int, default=150)
    ap.add_argument("--halves", type=int, nargs="+", default=[60, 120, 250], help="context H on each side")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        import metapredict as meta
    except ImportError as exc:
        raise InputError("this benchmark needs metapredict (pip install metapredict)") from exc
    alphabet = set(STANDARD)
    recs = [r for r in iter_records(args.fasta, check_duplicates=False)
            if len(r) > 800 and set(r.sequence) <= alphabet]
    rng = np.random.default_rng(args.seed)
    recs = [recs[i] for i in sorted(rng.choice(len(recs), min(args.proteins, len(recs)), replace=False))]
    full = {r.id: np.asarray(meta.predict_disorder(r.sequence)) for r in recs}
    print(f"{len(recs)} proteins longer than 800 residues of {args.fasta}")
    print(f"{'context H':>10} {'r':>8} {'r, shift removed':>17} {'sd of shift':>12} {'mean |diff|':>12}")
    for half in args.halves:
        a, b, a0, b0, shift = [], [], [], [], []
        for r in recs:
            c = len(r) // 2
            crop = np.asarray(meta.predict_disorder(r.sequence[c - half - 50:c + half + 50]))
            fa, cb = full[r.id][c - 50:c + 50], crop[half:half + 100]
            a.append(fa)
            b.append(cb)
            a0.append(fa - fa.mean())
            b0.append(cb - cb.mean())
            shift.append(fa.mean() - cb.mean())
        a, b = np.concatenate(a), np.concatenate(b)
        print(f"{half:>10} {np.corrcoef(a, b)[0, 1]:>8.4f} "
              f"{np.corrcoef(np.concatenate(a0), np.concatenate(b0))[0, 1]:>17.4f} {np.std(shift):>12.4f} "
              f"{np.abs(a - b).mean():>12.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, "teacher_context.py"))
