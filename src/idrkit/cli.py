"""The one command-line interface: ``idrkit predict|train|evaluate|...``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


from ._version import __version__
from .errors import InputError, run_main
from .records import TRACKS
from .regions import DEFAULT_MAX_GAP, DEFAULT_MIN_LENGTH, CallOptions

EPILOG = """examples:
  idrkit predict proteins.fasta -o disorder.tsv            # default model, per-residue table
  idrkit predict proteins.fasta -o out.csv --format csv    # competition CSV (proteinID,sequence,IDRs)
  idrkit train --model w2v-nb --train labelled.fasta --out my_model
  idrkit evaluate --ref labelled.fasta disorder.tsv
"""


def unit_interval(text: str) -> float:
    """A number from 0 to 1 (``nan`` and ``inf`` refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:  # also false for nan
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 0 to 1")
    return value


def count(text: str) -> int:
    """A whole number of at least 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is below 0")
    return value


def positive(text: str) -> int:
    """A whole number of at least 1."""
    value = count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is below 1")
    return value


def port(text: str) -> int:
    """A TCP port number, 1 to 65535."""
    value = count(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1 to 65535)")
    return value


def _add_region_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threshold", type=unit_interval, default=None,
                   help="score at or above which a residue is called disordered (default: the model's own, "
                        "chosen on held-out training data, else 0.5)")
    p.add_argument("--min-length", type=count, default=DEFAULT_MIN_LENGTH,
                   help=f"drop disordered regions shorter than this (default {DEFAULT_MIN_LENGTH}; 0 keeps all)")
    p.add_argument("--max-gap", type=count, default=DEFAULT_MAX_GAP,
                   help=f"fill ordered gaps of at most this many residues inside disorder (default {DEFAULT_MAX_GAP})")


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``idrkit predict: error: ...``); --help shows usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="idrkit", description="Predict intrinsically disordered regions (IDRs) of proteins from sequence.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"idrkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    p = sub.add_parser("predict", help="predict disorder for a FASTA, CSV or pickle file",
                       description="Predict per-residue disorder scores, 0/1 calls and regions.")
    p.add_argument("input", help="input file: FASTA (plain or labelled), competition CSV or pickle")
    p.add_argument("-o", "--output", default=None,
                   help="output file (a folder for --format caid); default: standard output")
    p.add_argument("--format", choices=["tsv", "caid", "csv", "json", "fasta", "regions", "summary"], default=None,
                   help="output format (default: from the output name's extension, else tsv); regions: one row "
                        "per predicted region; summary: one row per protein")
    p.add_argument("--model", default=None,
                   help="a shipped model (default, fast, function: see idrkit models) or a trained model folder "
                        "(default: default)")
    p.add_argument("--track", choices=TRACKS, default="pdb",
                   help="what to predict: disorder (pdb, the default, or nox), binding or linker regions, or "
                        "plddt (a predicted AlphaFold pLDDT), among the tracks the model has")
    _add_region_options(p)
    p.add_argument("--jobs", type=positive, default=None,
                   help="worker processes (default: every core for inputs over 1 MB, else 1; --jobs 1 keeps one "
                        "process)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run of the same command (keeps what was already written)")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--progress", action="store_true", default=None,
                       help="show a progress bar (sequences, residues/s, ETA); shown by default on a terminal "
                            "for inputs over 1 MB")
    shown.add_argument("--quiet", dest="progress", action="store_false", help="no progress bar")
    p.add_argument("--engine", choices=["local", "dask"], default="local",
                   help="local processes, or a Dask cluster (the [distributed] extra)")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 "
                                                     "(default with --engine dask: a local cluster)")

    p = sub.add_parser("train", help="train a model on labelled files",
                       description="Train a model family on labelled data and save it with a model card.")
    p.add_argument("--model", required=True, help="model family: w2v-nb, gbdt, cnn, bilstm, transformer, ...")
    p.add_argument("--train", required=True, nargs="+", action="extend", metavar="[TRACK:]FILE",
                   help="labelled training file(s); prefix with pdb: or nox: to name the definition (default pdb)")
    p.add_argument("--valid", default=None, help="labelled file for reporting figures (never trained on)")
    p.add_argument("--out", required=True, help="folder to write the model into")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a model parameter, e.g. --param epochs=10 (repeatable)")
    p.add_argument("--holdout", type=float, default=0.1,
                   help="fraction of training proteins held out for early stopping and threshold choice")
    p.add_argument("--no-homology-split", action="store_true",
                   help="hold out proteins at random instead of by MMseqs2 clusters")
    p.add_argument("--threshold-folds", type=count, default=0, metavar="K",
                   help="choose thresholds on pooled out-of-fold predictions of K homology folds (K more models "
                        "are trained) instead of the held-out part")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("distil", help="train a student on a teacher's scores (and optionally labels)",
                       description="Distillation: a teacher (metapredict-v3, metapredict-v2 or a model folder) "
                                   "scores unlabelled FASTA files (cached on disk); a student learns from those "
                                   "soft labels, jointly with labelled files if given.")
    p.add_argument("--teacher", required=True,
                   help="metapredict-v3, metapredict-v2, metapredict-plddt (learnt as the plddt track) or a "
                        "trained model folder")
    p.add_argument("--unlabelled", required=True, nargs="+", action="extend", metavar="FASTA")
    p.add_argument("--train", nargs="+", action="extend", default=[], metavar="[TRACK:]FILE",
                   help="labelled file(s), prefixed pdb: or nox: (optional)")
    p.add_argument("--model", default="cnn", help="student family: cnn, bilstm, transformer (default cnn)")
    p.add_argument("--valid", default=None, help="labelled file for reporting figures (never trained on)")
    p.add_argument("--out", required=True, help="folder to write the model into")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a model parameter, e.g. --param pretrain_epochs=3 --param teacher_weight=0")
    p.add_argument("--max-unlabelled", type=count, default=0, help="use at most this many unlabelled proteins")
    p.add_argument("--holdout", type=float, default=0.1)
    p.add_argument("--no-homology-split", action="store_true")
    p.add_argument("--threshold-folds", type=count, default=0, metavar="K",
                   help="choose thresholds on pooled out-of-fold predictions of K homology folds")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("evaluate", help="score predictions against a labelled file",
                       description="Pooled CAID-style metrics of one or more prediction files.")
    p.add_argument("predictions", nargs="+", help="prediction file(s): tsv, caid (file or folder), csv, json")
    p.add_argument("--ref", required=True, help="labelled reference file")
    p.add_argument("--threshold", type=unit_interval, default=None,
                   help="re-threshold the scores at this value for the 0/1 metrics (default: the file's own "
                        "0/1 calls where it has them, else scores >= 0.5)")
    p.add_argument("--bootstrap", type=count, default=0, metavar="N",
                   help="add 95%% confidence intervals from N bootstrap resamples of proteins")
    p.add_argument("--per-protein", default=None, metavar="TSV", help="write per-protein metrics here")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--model", default=None,
                   help="model folder (or 'default') whose training sequences are checked against --ref")
    p.add_argument("--plot", default=None, metavar="FIG",
                   help="draw ROC and precision-recall curves of all predictions into FIG (.png or .svg)")
    p.add_argument("--strict", action="store_true",
                   help="fail (instead of warning) when --ref shares sequences with the model's training data")

    p = sub.add_parser("models", help="list the shipped models and given model folders",
                       description="The shipped models and any model folders given: family, tracks, size, "
                                   "thresholds and the model card's summary.")
    p.add_argument("folders", nargs="*", help="model folders to describe beside the shipped ones")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = sub.add_parser("plot", help="draw disorder profiles of proteins (PNG or SVG)",
                       description="One figure per protein: score line, threshold, predicted regions shaded, "
                                   "and the annotated disorder when the input is labelled.")
    p.add_argument("input", nargs="?", help="input file (FASTA, labelled FASTA, CSV or pickle)")
    p.add_argument("-o", "--outdir", required=True, help="folder for the figures")
    p.add_argument("--proteome", default=None, metavar="PREDICTIONS",
                   help="instead of profiles: histograms of the fraction disordered per protein and of region "
                        "lengths, from an idrkit prediction file (per-residue TSV, JSON, CAID) or summary file; "
                        "written to OUTDIR/proteome.png (or .svg)")
    p.add_argument("--format", choices=["png", "svg"], default="png")
    p.add_argument("--ids", nargs="*", default=None, help="only these protein ids")
    p.add_argument("--model", default=None, help="a shipped model name or a model folder (default: default)")
    p.add_argument("--track", choices=TRACKS, default="pdb")
    _add_region_options(p)

    p = sub.add_parser("serve", help="start the web page and HTTP API on 127.0.0.1",
                       description="Serve the page at / and the API at /predict (OpenAPI at /docs).")
    p.add_argument("--model", default=None, help="a shipped model name or a model folder (default: default)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=port, default=8000)
    p.add_argument("--workers", type=count, default=0,
                   help="prediction worker processes (default 0: every core)")
    p.add_argument("--max-pending", type=positive, default=256,
                   help="requests predicted or waiting at once before answering 503 (default 256)")

    p = sub.add_parser("export-instructions", help="write the seed's instruction JSONL from labelled data",
                       description="Instruction-tuning data: one JSON line per chunk of at most --chunk residues, "
                                   "with instruction, input (the sequence) and output (the labels).")
    p.add_argument("input", help="labelled file (FASTA, CSV or pickle)")
    p.add_argument("-o", "--output", required=True, help="JSONL file to write")
    p.add_argument("--chunk", type=positive, default=256, help="residues per example (default 256)")
    p.add_argument("--answer-format", choices=["list", "string"], default="list",
                   help="list: [1,0,...] as in the seed; string: 10...")

    p = sub.add_parser("data", help="data checks: homology overlap between files",
                       description="Data checks. 'overlap' lists training proteins with MMseqs2 hits to "
                                   "evaluated proteins (leakage).")
    dsub = p.add_subparsers(dest="data_command", metavar="CHECK", required=True)
    d = dsub.add_parser("overlap", help="training proteins similar to evaluated proteins (MMseqs2)")
    d.add_argument("train", nargs="+", help="training files")
    d.add_argument("--against", nargs="+", required=True, help="evaluation files")
    d.add_argument("--min-seq-id", type=float, default=0.3, help="identity threshold (default 0.3)")
    d.add_argument("--evalue", type=float, default=1e-3, help="e-value threshold (default 1e-3)")
    d.add_argument("-o", "--output", default=None, help="write the hit list (TSV) here")
    return parser


def _parse_params(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--param {item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


def cmd_predict(args) -> int:
    from .io.formats import output_format
    from .predict import run_prediction

    to_stdout = args.output in (None, "-")
    fmt = output_format(None if to_stdout else args.output, args.format)
    options = CallOptions(args.track, args.threshold, args.min_length, args.max_gap)
    stats = run_prediction(args.input, None if to_stdout else args.output, fmt, args.model, options,
                           jobs=args.jobs, resume=args.resume, progress=args.progress, engine=args.engine,
                           scheduler=args.scheduler, on_warning=_warn)
    if to_stdout:
        return 0
    rate = stats["residues"] / max(stats["seconds"], 1e-9)
    skipped = f", {stats['skipped']} already written before --resume" if stats["skipped"] else ""
    print(f"wrote {stats['written']} proteins to {args.output} ({fmt.name}; {stats['residues']} residues predicted "
          f"in {stats['seconds']:.1f} s, {rate:,.0f} residues/s{skipped})", file=sys.stderr)
    return 0


def cmd_train(args) -> int:
    from .train import train_model

    model, card = train_model(args.model, args.train, args.out, valid=args.valid,
                              params=_parse_params(args.param), holdout=args.holdout, seed=args.seed,
                              homology_split=not args.no_homology_split, threshold_folds=args.threshold_folds)
    print(f"saved {args.model} model to {args.out} ({card['training_seconds']:.0f} s)", file=sys.stderr)
    for name, figs in card["validation"].items():
        print(f"{name}: " + ", ".join(f"{k}={figs[k]:.3f}" for k in ("auc", "ap", "fmax", "mcc", "f1")))
    return 0


def cmd_distil(args) -> int:
    from .train import distil_model

    model, card = distil_model(args.teacher, args.unlabelled, args.train, args.model, args.out, valid=args.valid,
                               params=_parse_params(args.param), holdout=args.holdout, seed=args.seed,
                               homology_split=not args.no_homology_split, max_unlabelled=args.max_unlabelled,
                               threshold_folds=args.threshold_folds)
    print(f"saved {args.model} student of {args.teacher} to {args.out} ({card['training_seconds']:.0f} s)",
          file=sys.stderr)
    for name, figs in card["validation"].items():
        print(f"{name}: " + ", ".join(f"{k}={figs[k]:.3f}" for k in ("auc", "ap", "fmax", "mcc", "f1")))
    return 0


METRIC_COLUMNS = ("auc", "ap", "fmax", "fmax_threshold", "mcc", "bacc", "f1", "precision", "recall",
                  "specificity", "competition_f1")


def cmd_evaluate(args) -> int:
    from .io.files import write_text_atomic
    from .io.formats import table_text
    from .io.predictions import read_predictions
    from .io.readers import read_records
    from .metrics import bootstrap, match, per_protein, pooled_metrics

    refs = {r.id: r for r in read_records(args.ref, require_labels=True)}
    if args.model:
        _check_leakage(args, refs)
    rows, per_rows, curves, used = {}, [], {}, {}
    for path in args.predictions:
        ids, labels, scores, calls = match(refs, read_predictions(path))
        if args.threshold is not None or calls is None:
            threshold = 0.5 if args.threshold is None else args.threshold
            calls = [s >= threshold for s in scores]
            used[path] = f"scores >= {threshold}"
        else:
            used[path] = "the file's 0/1 calls"
        curves[Path(path).name] = (labels, scores)
        m = pooled_metrics(labels, scores, calls=calls, ids=ids)
        m["calls"] = used[path]
        if args.bootstrap:
            for k, (lo, hi) in bootstrap(labels, scores, calls=calls, n=args.bootstrap).items():
                m[f"{k}_ci"] = [lo, hi]
        rows[path] = m
        if args.per_protein:
            per_rows += [{"predictions": path, **r} for r in per_protein(labels, scores, calls, ids)]
    if args.per_protein:
        cols = ["predictions", "id", "residues", "disordered", "auc", "mcc", "f1", "precision", "recall"]
        write_text_atomic(args.per_protein, table_text(cols, per_rows))
    if args.plot:
        from .plots import curves_figure, save_figure

        save_figure(curves_figure(curves), args.plot)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"reference: {args.ref}; 0/1 metrics from " + "; ".join(f"{p}: {u}" for p, u in used.items()))
    print(format_table(rows, METRIC_COLUMNS))
    if args.bootstrap:
        for path, m in rows.items():
            print(f"{path}: 95% CI " + ", ".join(f"{k} [{m[k + '_ci'][0]:.3f}, {m[k + '_ci'][1]:.3f}]"
                                                 for k in ("auc", "ap", "fmax", "f1", "mcc")))
    return 0


def _check_leakage(args, refs) -> None:
    """Warn (or, with --strict, stop) when the reference shares sequences with the model's training data."""
    from .predict import get_model
    from .train import shared_sequences

    shared = shared_sequences(get_model(args.model), [r.sequence for r in refs.values()])
    if shared:
        names = [list(refs)[i] for i in shared[:5]]
        msg = (f"{len(shared)} of {len(refs)} proteins of {args.ref} were in the model's training data "
               f"(e.g. {', '.join(names)})")
        if args.strict:
            raise InputError(msg)
        _warn(msg)


def format_table(rows: dict[str, dict], columns) -> str:
    """A plain-text table, one row per named result."""
    from .io.formats import cell_text as _cell

    width = max([len("predictions")] + [len(k) for k in rows])
    head = "predictions".ljust(width) + "".join(f" {c[:10]:>10}" for c in columns)
    lines = [head, "-" * len(head)]
    for name, m in rows.items():
        lines.append(name.ljust(width) + "".join(f" {_cell(m.get(c, '')):>10}" for c in columns))
    return "\n".join(lines)


def cmd_models(args) -> int:
    from .models import shipped_models
    from .predict import describe_model

    rows = [describe_model(name) for name in shipped_models()] + [describe_model(f) for f in args.folders]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    cols = ("name", "family", "tracks", "parameters", "size_kb", "trained_at", "validation_auc")
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols))
    return 0


def cmd_plot(args) -> int:
    if args.proteome:
        return _plot_proteome(args)
    if not args.input:
        raise InputError("give an input file to draw profiles, or --proteome PREDICTIONS")
    from .io.formats import safe_filename
    from .io.readers import iter_records
    from .models.base import resolve_threshold
    from .plots import profile_figure, save_figure
    from .predict import get_model, predict_records

    options = CallOptions(args.track, args.threshold, args.min_length, args.max_gap)
    threshold = resolve_threshold(get_model(args.model), args.track, args.threshold)
    wanted = set(args.ids) if args.ids else None
    records = {r.id: r for r in iter_records(args.input) if wanted is None or r.id in wanted}
    if wanted is not None and len(records) < len(wanted):
        raise InputError(f"{args.input}: {len(wanted) - len(records)} of the requested ids are not in the file")
    out = Path(args.outdir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    n = 0
    for pred in predict_records(records.values(), args.model, options, on_warning=_warn):
        fig = profile_figure(pred.id, pred.scores, threshold, pred.regions, records[pred.id].labels)
        save_figure(fig, out / f"{safe_filename(pred.id)}.{args.format}")
        n += 1
    print(f"wrote {n} profile(s) to {out}", file=sys.stderr)
    return 0


def _plot_proteome(args) -> int:
    from .io.predictions import read_proteome
    from .plots import proteome_figure, save_figure

    summary = read_proteome(args.proteome)
    out = Path(args.outdir) / f"proteome.{args.format}"
    if out.parent.exists() and not out.parent.is_dir():
        raise InputError(f"{out.parent}: exists and is not a folder")
    save_figure(proteome_figure(summary, Path(args.proteome).name), out)
    print(f"wrote {out} ({summary.fractions.size} proteins)", file=sys.stderr)
    return 0


def cmd_serve(args) -> int:
    from .web.app import serve

    from .web.app import Limits

    serve(args.model, args.host, args.port, Limits(workers=args.workers, max_pending=args.max_pending))
    return 0


def cmd_export_instructions(args) -> int:
    from .io.files import write_text_atomic
    from .io.readers import read_records
    from .models.llm import instructions_text

    lines = list(instructions_text(read_records(args.input, require_labels=True), args.chunk, args.answer_format))
    write_text_atomic(args.output, "".join(lines))
    print(f"wrote {len(lines)} instruction examples to {args.output}", file=sys.stderr)
    return 0


def cmd_data(args) -> int:
    from .io.files import write_text_atomic
    from .io.formats import table_text
    from .io.readers import iter_records
    from .mmseqs import search

    def load(paths):
        out = []
        for path in paths:
            out += [(path, r.id, r.sequence) for r in iter_records(path, check_duplicates=False)]
        return out

    train, evals = load(args.train), load(args.against)
    hits = search([t[2] for t in train], [e[2] for e in evals], args.min_seq_id, args.evalue)
    cols = ["train_file", "train_id", "eval_file", "eval_id", "identity", "evalue"]
    rows = [{"train_file": train[h.query][0], "train_id": train[h.query][1], "eval_file": evals[h.target][0],
             "eval_id": evals[h.target][1], "identity": f"{h.identity:.3f}", "evalue": f"{h.evalue:.2g}"}
            for h in sorted(hits, key=lambda h: (h.query, -h.identity))]
    text = table_text(cols, rows)
    if args.output:
        write_text_atomic(args.output, text)
    else:
        sys.stdout.write(text)
    print(f"training proteins with a hit (identity >= {args.min_seq_id}, e-value <= {args.evalue}):",
          file=sys.stderr)
    for path in args.train:
        n = len({h.query for h in hits if train[h.query][0] == path})
        total = sum(1 for t in train if t[0] == path)
        print(f"  {path}: {n} of {total}", file=sys.stderr)
    print(f"evaluated proteins hit: {len({h.target for h in hits})} of {len(evals)}; hits: {len(hits)}",
          file=sys.stderr)
    return 0


COMMANDS = {"predict": cmd_predict, "models": cmd_models, "train": cmd_train, "distil": cmd_distil, "evaluate": cmd_evaluate,
            "data": cmd_data, "export-instructions": cmd_export_instructions,
            "plot": cmd_plot, "serve": cmd_serve}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    if args.command in ("predict", "plot", "serve"):
        from .models._runtime import keep_freed_memory

        keep_freed_memory()
    try:
        return run_main(COMMANDS[args.command], f"idrkit {args.command}", args)
    except KeyboardInterrupt:
        print("idrkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of standard output has gone (e.g. `| head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
