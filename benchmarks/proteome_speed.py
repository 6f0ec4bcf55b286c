"""Speed and peak memory of ``idrkit predict`` on a generated proteome-sized FASTA.

Generates random proteins whose lengths follow the real unlabelled proteomes' length spread (log-normal,
median about 400), writes them to a temporary FASTA, then runs the CLI with each ``--jobs`` value and
reports residues per second and the peak resident memory of the largest process.

    python benchmarks/proteome_speed.py --sequences 20000 --jobs 1 2
    python benchmarks/proteome_speed.py --sequences 1000000 --mean-length 60 --jobs 2   # memory stays flat
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


WRAP = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stderr=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def generate(path: str, n: int, mean_length: float, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    aa = np.frombuffer(b"ACDEFGHIKLMNPQRSTVWY", dtype=np.uint8)
    freq = np.array([8.3, 1.4, 5.5, 6.8, 3.9, 7.1, 2.3, 5.9, 5.8, 9.7, 2.4, 4.1, 4.7, 3.9, 5.4, 6.6, 5.3, 6.9, 1.1,
                     2.9])
    freq /= freq.sum()
    sigma = 0.8
    mu = np.log(mean_length) - sigma ** 2 / 2
    total = 0
    with open(path, "w") as fh:
        for start in range(0, n, 10000):
            k = min(10000, n - start)
            lengths = np.clip(rng.lognormal(mu, sigma, k).astype(int), 5, 35000)
            residues = aa[rng.choice(20, int(lengths.sum()), p=freq)].tobytes().decode()
            pos = 0
            chunk = []
            for i, n_res in enumerate(lengths):
                chunk.append(f">gen{start + i}\n{residues[pos:pos + n_res]}\n")
                pos += n_res
            fh.write("".join(chunk))
            total += int(lengths.sum())
    return total


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sequences", type=int, default=20000)
    ap.add_argument("--mean-length", type=float, default=550)
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--format", default="csv")
    ap.add_argument("--model", default=None)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        fasta = os.path.join(tmp, "proteome.fasta")
        t = time.time()
        total = generate(fasta, args.sequences, args.mean_length)
        print(f"generated {args.sequences} sequences, {total} residues in {time.time() - t:.0f} s", flush=True)
        print(f"{'jobs':>5} {'seconds':>9} {'residues/s':>12} {'peak MB':>9}")
        for jobs in args.jobs:
            out = os.path.join(tmp, f"out{jobs}.{args.format}")
            cmd = [sys.executable, "-m", "idrkit.cli", "predict", fasta, "-o", out, "--jobs", str(jobs)]
            if args.model:
                cmd += ["--model", args.model]
            # a fresh wrapper process per run, so that its children's peak is this run's alone
            t = time.time()
            res = subprocess.run([sys.executable, "-c", WRAP, *cmd], check=True, capture_output=True, text=True)
            dt = time.time() - t
            peak = int(res.stdout.strip().splitlines()[-1])
            print(f"{jobs:>5} {dt:>9.1f} {total / dt:>12,.0f} {peak / 1024:>9.0f}", flush=True)
            os.unlink(out)
    return 0


if __name__ == "__main__":
    from idrkit.errors import run_main

    sys.exit(run_main(main, "proteome_speed.py"))
