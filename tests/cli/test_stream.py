from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyodl.cli import main


def test_stream_writes_its_results_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["stream", "--subjects", "4", "--input", "20", "--max-windows", "40", "--trainer", "tf",
                 "--pretrain-epochs", "1", "--drift", "rotation", "--sweep", "--out", str(out), "--cache",
                 str(tmp_path / "cache")]) == 0
    text = (out / "results.md").read_text()
    # The command as typed, no stray space; one subject has no standard error, and no "± nan" says so.
    assert f"`pyodl stream --subjects 4 --input 20 --max-windows 40 --trainer tf --pretrain-epochs 1 --drift " \
           f"rotation --sweep --out {out} --cache {tmp_path / 'cache'}`: subjects [4]" in text
    assert "nan" not in text and "(one subject: no standard error)" in text
    assert "drift: rotation" in text and "| agreement |" in text and "55.7% fewer queries" in text
    runs = json.loads((out / "results.json").read_text())["subjects"][0]["runs"]
    assert set(runs) == {"static", "always", "agreement", "agreement, no detector", "budget", "random",
                         "agreement + self-labels", "budget + self-labels", "agreement + exploration",
                         "budget + exploration", "random ~ budget + exploration", "agreement d=0.2",
                         "agreement d=0.35", "agreement d=0.65", "random ~ agreement d=0.2",
                         "random ~ agreement d=0.35", "random ~ agreement d=0.65", "budget r=0.1", "budget r=0.2",
                         "budget r=0.45", "budget r=0.6", "budget r=0.1 + exploration",
                         "budget r=0.2 + exploration", "budget r=0.45 + exploration", "budget r=0.6 + exploration"}
    # Steps follow the stream's clock, so pruning saves queries and radio but no training.
    assert runs["always"]["training_instructions"] == runs["agreement"]["training_instructions"] > 0
    assert runs["static"]["training_instructions"] == 0
    assert runs["always"]["queries"] == 40 and len(runs["agreement"]["queried"]) == 40
    for png in ("stream.png", "pruning.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(("args", "message"), [
    (["--budget", "2"], "argument --budget: must be >= 0 and <= 1, got 2"),
    (["--explore", "-0.1"], "argument --explore: must be >= 0 and <= 1, got -0.1"),
    (["--batch", "300"], "--batch must be in 1..256"),
    (["--lr", "0"], "argument --lr: must be > 0 and <= 10, got 0"), (["--teacher", "phone"], "teacher must be oracle"),
    (["--subjects", "a,b"], "--subjects takes comma-separated"),
])
def test_stream_refuses_bad_arguments_before_loading_anything(args: list[str], message: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stream", *args]) != 0
    assert message in capsys.readouterr().err
