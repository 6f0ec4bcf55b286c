"""How long a numpy bidirectional LSTM takes over a proteome: is a recurrent student fast enough to ship?

Random weights (speed does not depend on them): ``--layers`` bidirectional LSTM layers of ``--hidden`` units
over one-hot-sized inputs (``--inputs``), proteins sorted by length in batches of ``--batch``; each
direction runs every protein from its own end. One process, numpy's own threads; the recurrence of :mod:`idrkit.models.lstm_numpy`. Prints seconds and the
number of time steps (the sum of the batches' longest proteins).

    python benchmarks/lstm_speed.py --fasta ../shared/data/unlabelled/yeast_UP000002311.fasta --hidden 32
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from idrkit.errors import run_main
from idrkit.io import iter_records
from idrkit.models.lstm_numpy import lstm_direction


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fasta", required=True)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--inputs", type=int, default=20)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args(argv)
    seqs = [r.sequence for r in iter_records(args.fasta, check_duplicates=False)]
    rng = np.random.default_rng(0)
    h = args.hidden
    weights = [[(rng.normal(size=(args.inputs if layer == 0 else 2 * h, 4 * h)).astype(np.float32) * 0.1,
                 rng.normal(size=(4 * h, h)).astype(np.float32) * 0.1) for _ in range(2)]
               for layer in range(args.layers)]
    t0 = time.perf_counter()
    order = np.argsort([len(s) for s in seqs])
    steps = 0
    for k in range(0, len(seqs), args.batch):
        batch = [seqs[i] for i in order[k:k + args.batch]]
        lengths = np.array([len(s) for s in batch])
        steps += int(lengths.max())
        x = np.zeros((len(batch), lengths.max(), args.inputs), np.float32)
        for wx_wh in weights:
            x = np.concatenate([lstm_direction(x @ wx, lengths, wh, d == 1) for d, (wx, wh) in enumerate(wx_wh)], -1)
    print(f"{len(seqs)} proteins, {sum(map(len, seqs)):,} residues; {args.layers} x 2 directions x {h} hidden, "
          f"batches of {args.batch}: {time.perf_counter() - t0:.1f} s, {steps:,} time steps")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, "lstm_speed.py"))
