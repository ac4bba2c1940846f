"""Leave-one-subject-out personalization end to end on two subjects of the bundled watch dataset, trained by
the firmware on the simulated board and by TensorFlow on the same batches."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyodl.cli import main
from pyodl.data.watch import load_watch
from pyodl.experiments import personalize as pers


def _silent(what: str, done: int, total: int) -> None:
    pass


@pytest.fixture(scope="module")
def watch() -> tuple[list, list[str]]:
    recordings, classes, _ = load_watch()
    return recordings, classes


def test_board_and_tensorflow_agree_on_two_subjects(watch: tuple[list, list[str]], tmp_path: Path) -> None:
    recordings, classes = watch
    cfg = dict(input_len=20, stride=10, epochs=2, warmup_epochs=1, pretrain_epochs=2, seed=3)
    board = pers.run(recordings, classes, [2, 5], pers.Config(**cfg, trainer="board"), "watch", tmp_path, _silent)
    tf = pers.run(recordings, classes, [2, 5], pers.Config(**cfg, trainer="tf"), "watch", tmp_path, _silent)
    for b, t in zip(board.subjects, tf.subjects, strict=True):
        assert b.personalization_windows > 0 and b.test_windows > 0
        assert set(b.conditions) == set(pers.CONDITIONS)
        for c in pers.CONDITIONS:
            # Weights agree to ~1e-7, so predictions (and F1) agree unless a test window sits on a tie.
            assert abs(b.conditions[c].f1 - t.conditions[c].f1) <= 0.005, (b.subject, c)
            assert len(b.conditions[c].losses) == {"No Pers.": 0, "TL": 2, "Full": 3, "No Pretrain": 2}[c]
    # Pretraining was cached by the first run: the second found it.
    assert len(list(tmp_path.glob("general-*.keras"))) == 2
    assert len(list(tmp_path.glob("general-*.norm.json"))) == 2
    assert board.subjects[0].norm_mean == tf.subjects[0].norm_mean and len(board.subjects[0].norm_std) == 3


def test_cli_writes_the_table_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["personalize", "--subjects", "4", "--input", "20", "--epochs", "1", "--warmup-epochs", "0",
                 "--pretrain-epochs", "1", "--out", str(out), "--cache", str(tmp_path / "cache")]) == 0
    text = (out / "results.md").read_text()
    for condition in pers.CONDITIONS:
        assert f"| {condition} |" in text
    assert (out / "confusion.png").exists() and (out / "losses.png").exists() and (out / "results.json").exists()


def test_unknown_subject_and_bad_options_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["personalize", "--subjects", "42", "--out", "/tmp/none"]) == 2
    assert "subjects [42] are not in" in capsys.readouterr().err
    assert main(["personalize", "--dataset", "mnist"]) == 2
    assert "use watch, wisdm:PATH or table:PATH" in capsys.readouterr().err
    with pytest.raises(ValueError, match="trainer"):
        pers.Config(trainer="gpu")
