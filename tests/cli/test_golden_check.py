from __future__ import annotations

import json

import pytest

from pyodl.cli import main


def test_golden_check_passes_and_reports_every_layer(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["golden-check", "--input", "20", "--mode", "tl", "--steps", "3", "--batch", "4"]) == 0
    out = capsys.readouterr().out
    for layer in ("conv1d_1", "conv1d_2", "dense_1", "dense_2"):
        assert layer in out
    assert "(last 2 layers)" in out and out.rstrip().endswith("PASS")


def test_golden_check_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["golden-check", "--input", "20", "--steps", "2", "--batch", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is True and len(result["layers"]) == 4
    assert all(layer["worst_ratio"] <= 1 for layer in result["layers"])


def test_golden_check_fails_when_c_and_tf_disagree(capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken C result must turn the check red with exit status 1."""
    from pyodl.network import host

    real = host.HostNetwork.get_params

    def skewed(self: host.HostNetwork) -> list:
        return [(w * 1.001, b) for w, b in real(self)]

    monkeypatch.setattr(host.HostNetwork, "get_params", skewed)
    assert main(["golden-check", "--input", "20", "--steps", "1", "--batch", "2"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_golden_check_on_the_simulated_board(capsys: pytest.CaptureFixture[str]) -> None:
    """The firmware, trained inside the Unicorn STM32L496, against TensorFlow."""
    assert main(["golden-check", "--backend", "unicorn", "--input", "20", "--mode", "tl",
                 "--steps", "2", "--batch", "4", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["backend"] == "unicorn" and result["ok"] is True
    # TL: the frozen conv layers come back from flash bit for bit.
    assert [layer["max_abs"] for layer in result["layers"][:2]] == [0.0, 0.0]


def test_serial_backend_needs_a_port(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["golden-check", "--backend", "serial", "--steps", "1", "--batch", "1"]) == 2
    assert "--port" in capsys.readouterr().err


def test_renode_backend_without_renode_says_how_to_install(capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # the cross compiler stays reachable, Renode is not there
    assert main(["golden-check", "--backend", "renode", "--input", "20", "--steps", "1", "--batch", "1"]) == 2
    assert "renode/releases" in capsys.readouterr().err


def test_a_batch_that_does_not_fit_the_board_is_named_before_any_build(capsys: pytest.CaptureFixture[str]) -> None:
    """It used to fail at the link with the build's "region RAM overflowed", not saying that --batch's windows
    (the dataset region) were what did not fit."""
    from pyodl.model.architecture import paper_architecture
    from pyodl.resources.estimate import estimate

    assert main(["golden-check", "--backend", "unicorn", "--input", "100", "--batch", "5000"]) == 2
    err = capsys.readouterr().err
    assert "--batch 5000 does not fit the board" in err and "dataset region (.odl_dataset" in err
    fits = int(err.split(" fits (")[0].rsplit("--batch ", 1)[1])
    arch = paper_architecture(100, 3, 6)
    assert estimate(arch, None, fits, dataset_windows=fits).fits
    assert not estimate(arch, None, fits + 1, dataset_windows=fits + 1).fits
