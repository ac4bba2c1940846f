from __future__ import annotations

import json

import pytest

from pyodl.cli import main


def test_estimate_reports_every_part_and_fits(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["estimate", "paper", "--input", "20", "--mode", "tl"]) == 0
    out = capsys.readouterr().out
    for part in ("parameters (frozen, flash)", "gradients", "input window", "stack", "predicted instructions",
                 "predicted Cortex-M4 cycles", "mJ per batch",
                 "verdict: fits"):
        assert part in out


def test_estimate_json_flags_a_model_that_does_not_fit(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["estimate", "paper", "--input", "4000", "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["fits"] is False and result["ram_margin"] < 0


def test_trainable_layers_alone_means_tl_as_in_export(capsys: pytest.CaptureFixture[str]) -> None:
    """`pyodl export --trainable-layers 1` builds TL; estimate used to refuse the same option without --mode tl."""
    assert main(["estimate", "--input", "20", "--trainable-layers", "1", "--json"]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert main(["estimate", "--input", "20", "--mode", "tl", "--trainable-layers", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == alone and alone["trainable_layers"] == 1
    assert main(["estimate", "--input", "20", "--mode", "full", "--trainable-layers", "1"]) == 2
    assert "--trainable-layers applies to --mode tl only" in capsys.readouterr().err
