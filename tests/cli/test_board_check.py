from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyodl.cli import main


def test_board_check_reports_model_clock_and_memory(board_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["board-check", "--port", board_url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["clock_hz"] == 80_000_000 and report["clock_status"] == "ODL_CLOCK_OK"
    assert report["input"] == [40, 3] and report["classes"] == 6 and report["protocol_ok"]
    assert report["parameters_from"] == "the exported defaults" and report["info_cycles"] > 0
    assert 0 < report["stack_high_water_bytes"] < report["stack_bytes"]
    assert main(["board-check", "--port", board_url]) == 0
    assert "clock        80 MHz (ODL_CLOCK_OK)" in capsys.readouterr().out


def test_board_check_says_what_to_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    assert main(["board-check", "--port", str(tmp_path / "ttyACM9")]) == 2
    err = capsys.readouterr().err
    assert "cannot open" in err and "ST-LINK USB connector" in err and "Traceback" not in err
    with socket.create_server(("127.0.0.1", 0)) as silent:  # something listens, nothing answers
        url = f"socket://127.0.0.1:{silent.getsockname()[1]}"
        assert main(["board-check", "--port", url, "--timeout", "0.2"]) == 2
    err = capsys.readouterr().err
    assert "does not answer pyodl frames" in err and "pyodl flash" in err
