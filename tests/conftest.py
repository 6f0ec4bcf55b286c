"""Shared fixtures: small synthetic labelled proteins, the committed tiny CNN, and the real data when present."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from idrkit.io.formats import labelled_fasta_text
from idrkit.records import Record

from .synthetic import synthetic_records

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def tiny_records() -> list[Record]:
    return synthetic_records()


def write_labelled(path: Path, records) -> Path:
    """Write records as a labelled three-line FASTA file."""
    path.write_text(labelled_fasta_text(records))
    return path


@pytest.fixture(scope="session")
def tiny_labelled_file(tmp_path_factory, tiny_records) -> Path:
    return write_labelled(tmp_path_factory.mktemp("data") / "tiny.fasta", tiny_records)


def need_data(name: str) -> Path:
    """Path of a file of the real data set, or skip the test when the data folder is absent."""
    path = DATA / name
    if not path.exists():
        pytest.skip(f"real data not available ({path} is missing; it sits beside the repository in development)")
    return path


@pytest.fixture(scope="session")
def cnn_dir(tmp_path_factory) -> Path:
    """A copy of the committed tiny two-track CNN (numpy only: no torch needed to predict)."""
    out = tmp_path_factory.mktemp("cnn") / "m"
    shutil.copytree(FIXTURES / "tiny_cnn", out)
    return out


def run_idrkit(*args, cwd=None, input=None, timeout=120) -> subprocess.CompletedProcess:
    """The real ``idrkit`` entry point in a subprocess."""
    return subprocess.run([sys.executable, "-m", "idrkit.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, input=input, timeout=timeout)
