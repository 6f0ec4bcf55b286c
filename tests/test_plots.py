import pytest

pytest.importorskip("matplotlib")

from idrkit.cli import main  # noqa: E402


def test_profile_png_and_svg(cnn_dir, tiny_labelled_file, tmp_path):
    assert main(["plot", str(tiny_labelled_file), "-o", str(tmp_path / "png"), "--model", str(cnn_dir),
                 "--ids", "prot0", "prot3"]) == 0
    pngs = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert pngs == ["prot0.png", "prot3.png"]
    assert (tmp_path / "png" / "prot0.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plot", str(tiny_labelled_file), "-o", str(tmp_path / "svg"), "--model", str(cnn_dir),
                 "--ids", "prot1", "--format", "svg"]) == 0
    svg = (tmp_path / "svg" / "prot1.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "prot1" in svg


def test_plot_unknown_id_is_an_error(cnn_dir, tiny_labelled_file, tmp_path, capsys):
    assert main(["plot", str(tiny_labelled_file), "-o", str(tmp_path), "--model", str(cnn_dir),
                 "--ids", "nope"]) == 2
    assert "not in the file" in capsys.readouterr().err


def test_evaluate_plot_curves(cnn_dir, tiny_labelled_file, tmp_path):
    a, b = tmp_path / "a.tsv", tmp_path / "b.csv"
    main(["predict", str(tiny_labelled_file), "-o", str(a), "--model", str(cnn_dir)])
    main(["predict", str(tiny_labelled_file), "-o", str(b), "--model", str(cnn_dir)])
    assert main(["evaluate", "--ref", str(tiny_labelled_file), str(a), str(b), "--plot",
                 str(tmp_path / "curves.svg")]) == 0
    svg = (tmp_path / "curves.svg").read_text()
    assert "ROC" in svg and "precision-recall" in svg and "a.tsv (AUC" in svg


def test_proteome_histograms_from_predictions_and_summaries(cnn_dir, tiny_labelled_file, tmp_path, capsys):
    for fmt in ("tsv", "summary"):
        out = tmp_path / f"p.{fmt}"
        assert main(["predict", str(tiny_labelled_file), "-o", str(out), "--model", str(cnn_dir), "--format",
                     fmt]) == 0
        assert main(["plot", "--proteome", str(out), "-o", str(tmp_path / fmt), "--format", "svg"]) == 0
        svg = (tmp_path / fmt / "proteome.svg").read_text()
        assert "40 proteins" in svg and ("region length" in svg if fmt == "tsv" else "longest region" in svg)
    (tmp_path / "plain.fasta").write_text(">a\nMKV\n")
    assert main(["plot", "--proteome", str(tmp_path / "plain.fasta"), "-o", str(tmp_path / "x")]) == 2
    assert main(["plot", "-o", str(tmp_path / "y")]) == 2
