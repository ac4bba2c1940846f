from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyodl.board.unicorn import UnicornBoard
from pyodl.cli import KEPT_MARKER, main
from pyodl.model.keras_io import keras


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


def test_export_writes_the_two_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--input", "80", "--trainable-layers", "1", "--out", str(tmp_path)]) == 0
    header = (tmp_path / "model.h").read_text()
    assert "#define ODL_INPUT_LEN 80u" in header and "#define ODL_TRAINABLE_CAPACITY 1u" in header
    assert "pyodl export paper --input 80" in header
    assert (tmp_path / "model_params.c").exists()


def test_export_announces_what_it_changes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    km = keras.Sequential([keras.Input((20, 3)), keras.layers.Conv1D(4, 3, activation="relu"),
                           keras.layers.Dropout(0.3, name="drop"), keras.layers.Flatten(),
                           keras.layers.Dense(3, activation="softmax")])
    path = tmp_path / "dropout.keras"
    km.save(path)
    assert main(["export", str(path), "--out", str(tmp_path / "out")]) == 0
    assert "note: layer 'drop' (Dropout, rate 0.3): the identity on the device" in capsys.readouterr().out
    assert "note: layer 'drop' (Dropout, rate 0.3)" in (tmp_path / "out" / "model.h").read_text()
    assert main(["golden-check", str(path), "--steps", "3", "--batch", "4"]) == 0
    assert "PASS" in capsys.readouterr().out


def test_export_writes_the_parameter_bound_and_refuses_a_model_beyond_it(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--param-bound", "50", "--out", str(tmp_path)]) == 0
    header = (tmp_path / "model.h").read_text()
    assert "#define ODL_PARAM_BOUND 5.00000000e+01f" in header and "--param-bound 50" in header
    # Glorot weights of the paper's model reach ~0.3: a bound of 0.01 cannot hold them.
    assert main(["export", "--param-bound", "0.01", "--out", str(tmp_path / "small")]) == 2
    assert "beyond the bound 0.01 the device enforces; export with a larger --param-bound" in capsys.readouterr().err
    assert not (tmp_path / "small").exists()
    assert main(["export", "--param-bound", "nan", "--out", str(tmp_path / "nan")]) == 2
    assert "must be a finite number > 0" in capsys.readouterr().err


def test_tl_builds_fold_frozen_batchnorm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    km = keras.Sequential([keras.Input((20, 3)), keras.layers.Conv1D(4, 3, name="conv"),
                           keras.layers.BatchNormalization(name="bn"), keras.layers.ReLU(name="relu"),
                           keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax", name="out")])
    bn = km.get_layer("bn")
    bn.set_weights([w + 0.3 * (i + 1) for i, w in enumerate(bn.get_weights())])  # away from 1, 0, 0, 1
    path = tmp_path / "bn.keras"
    km.save(path)
    assert main(["export", str(path), "--trainable-layers", "1", "--out", str(tmp_path / "tl")]) == 0
    assert "note: bn folded into conv" in capsys.readouterr().out
    assert "ODL_LAYER_BATCHNORM" not in (tmp_path / "tl" / "model_params.c").read_text()
    assert main(["export", str(path), "--out", str(tmp_path / "full")]) == 0  # Full trains gamma and beta
    assert "ODL_LAYER_BATCHNORM" in (tmp_path / "full" / "model_params.c").read_text()
    assert main(["golden-check", str(path), "--mode", "tl", "--trainable-layers", "1", "--steps", "3",
                 "--batch", "4"]) == 0
    captured = capsys.readouterr()
    assert "note: bn folded into conv" in captured.err and captured.out.rstrip().endswith("PASS")


def test_errors_exit_2_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    km = keras.Sequential([keras.Input((20, 3)), keras.layers.Conv1D(4, 3, kernel_regularizer="l2"),
                           keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    path = tmp_path / "regularized.keras"
    km.save(path)
    assert main(["export", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "kernel_regularizer is not supported" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert main(["export", str(tmp_path / "missing.keras")]) == 2
    assert "no such model file" in capsys.readouterr().err
    assert main(["golden-check", "--mode", "tl", "--trainable-layers", "9"]) == 2
    assert "between 1 and 4" in capsys.readouterr().err
    assert main(["golden-check", "--lr", "nan"]) == 2
    assert main(["export", str(path), "--input", "40"]) == 2
    assert "--input apply to the paper model only" in capsys.readouterr().err
    assert main(["golden-check", "--classes", "1"]) == 2
    assert "at least 2 classes" in capsys.readouterr().err


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


def test_bench_writes_results_and_chart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--inputs", "20", "--modes", "tl", "--batch", "2", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "[1/1] T=20 tl" in captured.err
    text = (tmp_path / "RESULTS.md").read_text()
    assert "| 20 | tl |" in text and "63 KB" in text and "at commit" in text and "mJ/batch" in text
    assert (tmp_path / "bench.png").read_bytes()[:4] == b"\x89PNG"
    # Another benchmark's section below the marker survives the next rewrite; the table above it is replaced.
    (tmp_path / "RESULTS.md").write_text("old table\n\n" + KEPT_MARKER + "## Renode round trips\n| a | 1 |\n")
    assert main(["bench", "--inputs", "20", "--modes", "tl", "--batch", "2", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "RESULTS.md").read_text()
    assert "old table" not in text and "| 20 | tl |" in text
    assert text.endswith(KEPT_MARKER + "## Renode round trips\n| a | 1 |\n")


def test_bench_json_gives_cycles_time_and_energy_per_mac_and_batch(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--inputs", "20", "--modes", "full", "--batch", "2", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["cycles_per_mac"] == pytest.approx(row["cycles_measured"] / row["training_macs"])
    assert row["instructions_per_mac"] < row["cycles_per_mac"]  # loads, branches and wait states cost more
    assert row["cycles_per_batch"] == 2 * row["cycles_measured"] + row["step_cycles"]
    assert row["seconds_per_batch_pll80"] == pytest.approx(row["cycles_per_batch"] / 80e6)
    # energy: 91 µA/MHz x 3.3 V over that time: 20 times longer at 4 MHz at a twentieth of the current
    assert row["seconds_per_batch_msi4"] == pytest.approx(20 * row["seconds_per_batch_pll80"])
    assert row["millijoules_per_batch_pll80"] == pytest.approx(row["cycles_per_batch"] * 91e-12 * 3.3 * 1e3)
    assert row["millijoules_per_batch_msi4"] == pytest.approx(row["millijoules_per_batch_pll80"])
    assert abs(row["cycle_error"]) < 0.10 and row["simulator_mips"] > 0
    assert row["paper_millijoules_per_batch"] == pytest.approx(2.65 * 7.90)  # Table III: mW x s at T=20 Full


def _interrupt_when(args: list[str], marker: str, sig: int, tmp_path: Path) -> tuple[int, str, float]:
    """Runs ``pyodl ARGS`` with its own temporary folder, sends ``sig`` once ``marker`` shows on its stderr,
    and returns the exit status, the stderr and the seconds from the signal to the exit."""
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "pyodl.cli", *args], stderr=subprocess.PIPE, text=True,
                            env=env, cwd=tmp_path)
    assert proc.stderr is not None
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(lambda: proc.stderr.read(1), "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while marker not in "".join(seen) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"exited before {marker!r}: {''.join(seen)[-2000:]}"
    proc.send_signal(sig)
    t0 = time.monotonic()
    status = proc.wait(timeout=30)
    elapsed = time.monotonic() - t0
    reader.join(timeout=5)
    return status, "".join(seen), elapsed


def test_ctrl_c_during_pretraining_exits_130_with_one_line_and_writes_nothing(tmp_path: Path) -> None:
    status, err, elapsed = _interrupt_when(
        ["personalize", "--subjects", "1", "--input", "20", "--pretrain-epochs", "500", "--out", "out",
         "--cache", "cache"], "pretraining", signal.SIGINT, tmp_path)
    assert status == 130 and elapsed < 1.0, err[-2000:]
    assert err.rstrip().endswith("pyodl personalize: interrupted") and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    assert not list((tmp_path / "cache").glob("*")) if (tmp_path / "cache").exists() else True
    assert not list((tmp_path / "tmp").iterdir())


def test_sigterm_during_board_training_exits_143_and_removes_the_build_folder(tmp_path: Path) -> None:
    status, err, elapsed = _interrupt_when(
        ["personalize", "--subjects", "1", "--input", "20", "--pretrain-epochs", "1", "--epochs", "500",
         "--out", "out", "--no-cache"], "subject 1 TL", signal.SIGTERM, tmp_path)
    assert status == 143 and elapsed < 1.0, err[-2000:]
    assert err.rstrip().endswith("pyodl personalize: terminated") and "Traceback" not in err
    assert not (tmp_path / "out").exists() and not list((tmp_path / "tmp").iterdir())


# ---------------------------------------------------------------- a real board: board-check and flash
# The board is the Unicorn model behind a TCP socket (pyodl.board.tcp_bridge), reached as
# socket://127.0.0.1:PORT exactly as a NUCLEO's /dev/ttyACM0 or a Renode socket terminal is.


@pytest.fixture()
def board_url(paper_board: UnicornBoard) -> Iterator[str]:
    from pyodl.board.tcp_bridge import TcpBridge

    bridge = TcpBridge(paper_board)
    with bridge as port:
        yield f"socket://127.0.0.1:{port}"
    assert bridge.error is None, bridge.error


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


def _fake_tool(bin_dir: Path, name: str, status: int = 0, output: str = "") -> Path:
    """A stand-in programmer that records its arguments (and that the ELF it was given exists)."""
    log = bin_dir / f"{name}.args"
    script = bin_dir / name
    script.write_text(f"#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done > '{log}'\n"
                      f"for a in \"$@\"; do case \"$a\" in *.elf*) echo elf-present >> '{log}';; esac; done\n"
                      f"echo '{output}'\nexit {status}\n")
    script.chmod(0o755)
    return log


def test_flash_without_a_programmer_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["flash", "--no-check"]) == 2
    err = capsys.readouterr().err
    assert "sudo apt install openocd" in err and "pip install pyocd" in err and "Traceback" not in err
    assert main(["flash", "--tool", "pyocd", "--no-check"]) == 2
    assert "`pyocd` is not installed" in capsys.readouterr().err


def test_flash_programs_verifies_and_resets_with_openocd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    log = _fake_tool(tmp_path, "openocd")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert main(["flash", "--input", "20", "--no-check"]) == 0
    args = log.read_text().splitlines()
    assert args[:3] == ["-f", "board/st_nucleo_l4.cfg", "-c"]
    assert args[3].startswith("program {/") and args[3].endswith("/pyodl.elf} verify reset exit")
    assert args[4] == "elf-present"
    assert "programmed, verified and reset" in capsys.readouterr().err


def test_a_failing_programmer_shows_its_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    _fake_tool(tmp_path, "pyocd", status=1, output="0000123 C No connected debug probes")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert main(["flash", "--tool", "pyocd", "--input", "20", "--no-check"]) == 2
    err = capsys.readouterr().err
    assert "No connected debug probes" in err and "failed with exit status 1" in err and "COM LED" in err


def test_flash_checks_the_board_runs_the_model_it_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       board_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _fake_tool(tmp_path, "openocd")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert main(["flash", "--port", board_url]) == 0  # the bridge's board runs the paper model at T=40
    assert "model        0x" in capsys.readouterr().out
    assert main(["flash", "--input", "60", "--port", board_url]) == 2
    assert "flash firmware built for this model" in capsys.readouterr().err


def test_bench_on_a_board_reports_its_cycles_beside_the_simulated_instructions(
        board_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--backend", "serial", "--port", board_url, "--inputs", "40", "--modes", "full",
                 "--batch", "4", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["clock_hz"] == 80_000_000 and row["board_cycles_per_step"] > 0
    # The bridged Unicorn board's CYCCNT reads the cycle model, as the mailbox measurement does; the firmware's
    # own count leaves out the command's frame handling, which the mailbox has none of.
    assert abs(row["cycle_model_error"]) < 0.01
    assert 1.1 < row["cycles_per_instruction"] < 1.6
    assert row["board_seconds_per_batch"] == pytest.approx(
        (4 * row["board_cycles_per_sample"] + row["board_cycles_per_step"]) / 80e6, rel=0.01)
    assert main(["bench", "--backend", "serial", "--port", board_url]) == 2  # five input sizes: which one?
    assert "one --inputs T and one --modes M" in capsys.readouterr().err


def test_stream_writes_its_results_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["stream", "--subjects", "4", "--input", "20", "--max-windows", "40", "--trainer", "tf",
                 "--pretrain-epochs", "1", "--drift", "rotation", "--sweep", "--out", str(out), "--cache",
                 str(tmp_path / "cache")]) == 0
    text = (out / "results.md").read_text()
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
    (["--budget", "2"], "--budget must be in [0, 1]"), (["--explore", "-0.1"], "--explore must be in [0, 1]"),
    (["--batch", "300"], "--batch must be in 1..256"),
    (["--lr", "0"], "--lr must be a finite number > 0"), (["--teacher", "phone"], "teacher must be oracle"),
    (["--subjects", "a,b"], "--subjects takes comma-separated"),
])
def test_stream_refuses_bad_arguments_before_loading_anything(args: list[str], message: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stream", *args]) != 0
    assert message in capsys.readouterr().err
