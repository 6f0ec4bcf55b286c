"""What idrkit guarantees (README), tried as a user would, through the real ``idrkit`` entry point.

A corpus of bad inputs and faults: each must end with its exit code and one line naming the problem, no
traceback, no file changed or deleted that the user did not name as the output, and no partial output left.
"""

import fcntl
import hashlib
import os
import pickle
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from .conftest import FIXTURES, run_idrkit

GOOD = ">a\nMSEEPKSSPQESEKPAEGSSKPAAEE\n>b\nMKVLIVWFAMLIVWFAMCYLIV\n"


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def snapshot(root: Path) -> dict:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "link:" + os.readlink(p)
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _model_json(folder: Path, change) -> Path:
    import json
    import shutil

    shutil.copytree(FIXTURES / "tiny_cnn", folder)
    doc = json.loads((folder / "model.json").read_text())
    change(doc)
    (folder / "model.json").write_text(json.dumps(doc))
    return folder


def _pickle(path: Path, data) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else pickle.dumps(data))
    return path


def _write(path: Path, text, binary=False) -> Path:
    path.write_bytes(text) if binary else path.write_text(text)
    return path


def _resume_other_options(t: Path):
    """An interrupted run (its partial files) of a different track, then --resume with pdb."""
    (t / "out.tsv.partial").write_text("# idrkit\nid\tposition\tresidue\tscore\tcall\n")
    (t / "out.tsv.partial.progress").write_text('#options {"format": "tsv", "max_gap": 3, "min_length": 5, '
                                                '"model": "m", "threshold": null, "track": "nox", "weights": "x"}\n')
    return ["predict", "in.fasta", "-o", "out.tsv", "--resume"]


# name: (set-up returning the arguments (run in the case's folder), exit code, words of the one-line message)
CASES = {
    "output is an existing folder": (lambda t: (t / "d").mkdir() or ["predict", "in.fasta", "-o", "d"], 2,
                                     "is a folder"),
    "output is the parent folder": (lambda t: ["predict", "in.fasta", "-o", ".."], 2, "is a folder"),
    "output is the current folder": (lambda t: ["predict", "in.fasta", "-o", "."], 2, "is a folder"),
    "caid into a folder of other files": (
        lambda t: (t / "d").mkdir() or (t / "d" / "notes.txt").write_text("x") and
        ["predict", "in.fasta", "-o", "d", "--format", "caid"], 2, "holds files other than .caid files"),
    "output is the input": (lambda t: ["predict", "in.fasta", "-o", "in.fasta"], 2, "the output is the input"),
    "output is the input through a link": (
        lambda t: (t / "link.tsv").symlink_to(t / "in.fasta") or ["predict", "in.fasta", "-o", "link.tsv"], 2,
        "the output is the input"),
    "output is the input by another path": (
        lambda t: (t / "sub").mkdir() or ["predict", "in.fasta", "-o", "sub/../in.fasta"], 2,
        "the output is the input"),
    "threshold nan": (lambda t: ["predict", "in.fasta", "--threshold", "nan"], 2, "not a number from 0 to 1"),
    "threshold above 1": (lambda t: ["predict", "in.fasta", "--threshold", "1.5"], 2, "not a number from 0 to 1"),
    "threshold not a number": (lambda t: ["predict", "in.fasta", "--threshold", "high"], 2, "is not a number"),
    "negative min-length": (lambda t: ["predict", "in.fasta", "--min-length", "-1"], 2, "is below 0"),
    "negative max-gap": (lambda t: ["predict", "in.fasta", "--max-gap", "-2"], 2, "is below 0"),
    "zero jobs": (lambda t: ["predict", "in.fasta", "--jobs", "0"], 2, "is below 1"),
    "port out of range": (lambda t: ["serve", "--port", "70000"], 2, "not a port number"),
    "port zero": (lambda t: ["serve", "--port", "0"], 2, "not a port number"),
    "missing input": (lambda t: ["predict", "none.fasta", "-o", "o.tsv"], 2, "none.fasta: no such file"),
    "empty input": (lambda t: _write(t / "e.fasta", "") and ["predict", "e.fasta", "-o", "o.tsv"], 2,
                    "no records"),
    "invalid residue": (lambda t: _write(t / "x.fasta", GOOD + ">c\nMK7V\n") and
                        ["predict", "x.fasta", "-o", "o.tsv"], 2, "record 'c': invalid character '7'"),
    "duplicate id": (lambda t: _write(t / "x.fasta", GOOD + ">a\nMKV\n") and ["predict", "x.fasta", "-o", "o.tsv"],
                     2, "record 'a': duplicate id"),
    "labels of the wrong length": (lambda t: _write(t / "x.fasta", ">a\nMKV\n10\n") and
                                   ["predict", "x.fasta", "-o", "o.tsv"], 2, "2 labels for a sequence of 3"),
    "sequence before any header": (lambda t: _write(t / "x.fasta", "MKV\n" + GOOD) and
                                   ["predict", "x.fasta", "-o", "o.tsv"], 2, "before the first '>' header"),
    "not UTF-8": (lambda t: _write(t / "x.fasta", b">a\nMK\xff\xfe\n", True) and
                  ["predict", "x.fasta", "-o", "o.tsv"], 2, "not a UTF-8 text file"),
    "pickle that runs code": (lambda t: _pickle(t / "x.pkl", [{"id": "x", "sequence": "MK", "label": Evil()}]) and
                              ["predict", "x.pkl", "-o", "o.tsv"], 2, "refusing to load"),
    "pickle asking for gigabytes": (
        lambda t: _pickle(t / "x.pkl", b"\x80\x04\x8c\x05numpy\x8c\x07ndarray\x93J\x00\xe4\x0bT\x85\x8c\x02f8\x86R\x85.")
        and ["predict", "x.pkl", "-o", "o.tsv"], 2, "more than the file can hold"),
    "pickle labels of 0.5": (lambda t: _pickle(t / "x.pkl", [{"id": "q", "sequence": "MKV", "label": [0.5, 1, 0]}])
                             and ["predict", "x.pkl", "-o", "o.tsv"], 2, "labels must be 0, 1 or -1"),
    "pickle that is not a list": (lambda t: _pickle(t / "x.pkl", {"id": "q"}) and
                                  ["predict", "x.pkl", "-o", "o.tsv"], 2, "expected a list of records"),
    "csv id with a tab": (lambda t: _write(t / "x.csv", 'proteinID,sequence\n"a\tb",MKV\n') and
                          ["predict", "x.csv", "-o", "o.tsv"], 2, "control character"),
    "id longer than 1,000 characters": (lambda t: _write(t / "x.fasta", ">" + "a" * 1001 + "\nMKV\n") and
                                        ["predict", "x.fasta", "-o", "o.tsv"], 2, "id longer than 1000 characters"),
    "id with a control character": (lambda t: _write(t / "x.fasta", ">a\x01b\nMKV\n") and
                                    ["predict", "x.fasta", "-o", "o.tsv"], 2, "control character"),
    "csv row of the wrong width": (lambda t: _write(t / "x.csv", "proteinID,sequence\na,MKV,1\n") and
                                   ["predict", "x.csv", "-o", "o.tsv"], 2, "3 fields, expected 2"),
    "model folder that is not one": (lambda t: (t / "m").mkdir() or
                                     ["predict", "in.fasta", "-o", "o.tsv", "--model", "m"], 3, "not a model folder"),
    "model.json version not a number": (
        lambda t: _model_json(t / "m", lambda d: d.update(format_version="two")) and
        ["predict", "in.fasta", "-o", "o.tsv", "--model", "m"], 3, "field 'format_version'"),
    "model.json a list": (lambda t: _model_json(t / "m", lambda d: None) and
                          (t / "m" / "model.json").write_text("[]") and
                          ["predict", "in.fasta", "-o", "o.tsv", "--model", "m"], 3, "must hold a JSON object"),
    "model.json empty dilations": (
        lambda t: _model_json(t / "m", lambda d: d["params"].update(dilations=[])) and
        ["predict", "in.fasta", "-o", "o.tsv", "--model", "m"], 3, "field 'params.dilations'"),
    "output under a file": (lambda t: ["predict", "in.fasta", "-o", "in.fasta/out.tsv"], 5, "cannot write"),
    "resume with other options": (_resume_other_options, 2, "'nox' then, 'pdb' now"),
    "resume to standard output": (lambda t: ["predict", "in.fasta", "--resume"], 2, "--resume needs an output"),
    "caid to standard output": (lambda t: ["predict", "in.fasta", "--format", "caid"], 2, "give a folder with -o"),
    "unknown output format": (lambda t: ["predict", "in.fasta", "--format", "xml"], 2, "invalid choice"),
    "evaluate against a file without labels": (
        lambda t: _write(t / "p.tsv", "id\tposition\tresidue\tscore\tcall\na\t1\tM\t0.5\t1\n") and
        ["evaluate", "--ref", "in.fasta", "p.tsv"], 2, "no labels"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_fault_corpus(name, tmp_path):
    setup, code, words = CASES[name]
    case = tmp_path / "case"
    case.mkdir()
    (case / "in.fasta").write_text(GOOD)
    args = setup(case)
    args = [*args, *(["--model", str(FIXTURES / "tiny_cnn")] if args[0] == "predict" and "--model" not in args
                     else [])]
    before = snapshot(tmp_path)
    proc = run_idrkit(*args, cwd=case)
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    after = snapshot(tmp_path)
    assert after == before, "files changed, appeared or disappeared"
    assert not [p for p in after if p.endswith((".partial", ".progress"))] or name == "resume with other options"


def test_corpus_is_large_enough():
    assert len(CASES) >= 30


def test_full_disk_leaves_no_partial_output(tmp_path, cnn_dir):
    """A file-size limit stands for a full disk: the write fails, one line names the path and the error."""
    (tmp_path / "in.fasta").write_text("".join(f">p{i}\n{'MSEEPKSSPQ' * 30}\n" for i in range(300)))

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    proc = subprocess.run([sys.executable, "-m", "idrkit.cli", "predict", "in.fasta", "-o", "out.tsv", "--model",
                           str(cnn_dir)], cwd=tmp_path, capture_output=True, text=True, preexec_fn=limit)
    assert proc.returncode == 5, proc.stderr
    assert proc.stderr.strip().splitlines() == ["idrkit predict: error: out.tsv: cannot write: File too large"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.fasta"]


def test_a_second_run_on_the_same_output_is_refused(tmp_path, cnn_dir):
    (tmp_path / "in.fasta").write_text(GOOD)
    with open(tmp_path / "out.tsv.partial.progress", "a") as held:  # a first run holds the lock
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        proc = run_idrkit("predict", "in.fasta", "-o", "out.tsv", "--model", cnn_dir, cwd=tmp_path)
    assert proc.returncode == 5
    assert "another idrkit run is writing this output" in proc.stderr
    assert not (tmp_path / "out.tsv").exists()


def test_broken_pipe_exits_quietly(tmp_path, cnn_dir):
    (tmp_path / "in.fasta").write_text("".join(f">p{i}\n{'MSEEPKSSPQ' * 50}\n" for i in range(2000)))
    proc = subprocess.run(f"{sys.executable} -m idrkit.cli predict in.fasta --model {cnn_dir} | head -n 2",
                          shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.stdout.splitlines()[1] == "id\tposition\tresidue\tscore\tcall"
    assert proc.stderr == ""


def test_an_error_after_rows_went_to_standard_output_says_so(tmp_path, cnn_dir):
    good = "".join(f">p{i}\n{'MSEEPKSSPQ' * 30}\n" for i in range(2000))
    (tmp_path / "in.fasta").write_text(good + ">bad\nMK#\n")
    proc = run_idrkit("predict", "in.fasta", "--model", cnn_dir, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout.count("\n") > 1000
    line, = proc.stderr.strip().splitlines()
    assert "record 'bad': invalid character '#'" in line and "standard output are incomplete" in line


def test_byte_order_mark_and_quoted_csv_ids(tmp_path, cnn_dir):
    (tmp_path / "in.csv").write_bytes("\ufeffproteinID,sequence\n\"a,1\",MKVLAAEEPKSSPQ\n".encode())
    proc = run_idrkit("predict", "in.csv", "-o", "out.csv", "--model", cnn_dir, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.csv").read_text().splitlines()[1].startswith('"a,1",MKVLAAEEPKSSPQ,')


def test_caid_output_replaces_its_own_folder_only(tmp_path, cnn_dir):
    (tmp_path / "in.fasta").write_text(GOOD)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.caid").write_text(">old\n")
    proc = run_idrkit("predict", "in.fasta", "-o", "out", "--format", "caid", "--model", cnn_dir, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.caid", "b.caid"]


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_workers_end_when_the_parent_is_killed(tmp_path, cnn_dir):
    rng = np.random.default_rng(0)
    aa = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    (tmp_path / "in.fasta").write_text("".join(f">p{i}\n{''.join(rng.choice(aa, 400))}\n" for i in range(20000)))
    proc = subprocess.Popen([sys.executable, "-m", "idrkit.cli", "predict", "in.fasta", "-o", "o.tsv", "--jobs",
                             "2", "--model", str(cnn_dir)], cwd=tmp_path, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            workers = _children(proc.pid)
            if len(workers) >= 2:
                break
            time.sleep(0.05)
        assert len(workers) >= 2, "the workers did not start"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.1)
    assert not [w for w in workers if _alive(w)], "workers outlived their parent"


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
