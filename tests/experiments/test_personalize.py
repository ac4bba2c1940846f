"""Leave-one-subject-out personalization end to end on two subjects of the bundled watch dataset, trained by
the firmware on the simulated board and by TensorFlow on the same batches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pyodl.board.unicorn import UnicornBoard
from pyodl.cli import main
from pyodl.data.recording import Recording
from pyodl.data.windows import recording_split
from pyodl.experiments import personalize as pers
from pyodl.model.architecture import paper_architecture


def _silent(what: str, done: int, total: int) -> None:
    pass


def test_board_and_tensorflow_agree_on_two_subjects(watch: tuple[list, list[str]], tmp_path: Path) -> None:
    recordings, classes = watch
    cfg = dict(input_len=20, stride=10, epochs=2, warmup_epochs=1, pretrain_epochs=2, no_pretrain_epochs=2, seed=3)
    # Subjects 3 and 4 have the fewest windows (the watch data's shortest recordings).
    board = pers.run(recordings, classes, [3, 4], pers.Config(**cfg, trainer="board"), "watch", tmp_path, _silent)
    tf = pers.run(recordings, classes, [3, 4], pers.Config(**cfg, trainer="tf"), "watch", tmp_path, _silent)
    for b, t in zip(board.subjects, tf.subjects, strict=True):
        assert b.personalization_windows > 0 and b.test_windows > 0
        assert set(b.conditions) == set(pers.CONDITIONS)
        for c in pers.CONDITIONS:
            # Weights agree to ~1e-7, so predictions (and F1) agree unless a test window sits on a tie.
            assert abs(b.conditions[c].f1 - t.conditions[c].f1) <= 0.005, (b.subject, c)
            assert len(b.conditions[c].losses) == {"No Pers.": 0, "TL": 2, "Full": 3, "No Pretrain": 2}[c]
            # The int8 copies: quantized by the firmware after board training, by the same C library on this
            # computer after TensorFlow's and for the general model.
            bq, tq = b.conditions[c].quantized, t.conditions[c].quantized
            assert set(bq) == set(tq) == {"8", "4"}
            assert {q.where for q in bq.values()} == {"host" if c == "No Pers." else "board"}
            assert {q.where for q in tq.values()} == {"host"}
            for spec in ("8", "4"):
                assert bq[spec].weight_bytes == tq[spec].weight_bytes
                assert bq[spec].bits == ([8] * 4 if spec == "8" else [4] * 4)
                if c == "No Pers.":  # the same general model, quantized by the same library
                    assert bq[spec] == tq[spec]
                else:  # float weights ~1e-7 apart may put a weight or a range step on the other int8 side
                    assert abs(bq[spec].f1 - tq[spec].f1) <= 0.02, (b.subject, c, spec)
    # Adaptive inference: at threshold 0 the cheap mode answers every window, at 256 the whole window does and
    # the curve ends at the int8 model's own F1.
    for report in (board, tf):
        for c in pers.CONDITIONS:
            curve = report.adaptive_curve(c)
            assert [p["threshold"] for p in curve] == list(pers.ADAPTIVE_THRESHOLDS)
            assert curve[0]["whole_share"] == 0.0 and curve[-1]["whole_share"] == 1.0
            assert [p["whole_share"] for p in curve] == sorted(p["whole_share"] for p in curve)
            assert curve[-1]["f1_mean"] == pytest.approx(report.summary()[c]["int8 8"]["f1_mean"], abs=1e-12)
            assert curve[0]["instructions"] < curve[-1]["instructions"]
    # Pretraining was cached by the first run: the second found it.
    assert len(list(tmp_path.glob("general-*.keras"))) == 2
    assert len(list(tmp_path.glob("general-*.norm.json"))) == 2
    assert board.subjects[0].norm_mean == tf.subjects[0].norm_mean and len(board.subjects[0].norm_std) == 3


def test_the_renode_trainer_gives_the_board_results(watch: tuple[list, list[str]], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """--trainer renode through Renode's console pty, with a stand-in `renode` on the PATH that runs the firmware
    on the Unicorn board (tests/board/fixtures/pty_renode.py): the windows go over the UART in STORE_DATASET
    frames, and every loss and F1 equals the mailbox run's, bit for bit."""
    standin = Path(__file__).parents[1] / "board" / "fixtures" / "pty_renode.py"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "renode").write_text(f'#!/bin/sh\nexec "{sys.executable}" "{standin}" "$@"\n')
    (bin_dir / "renode").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    recordings, classes = watch
    cfg = dict(input_len=20, stride=10, epochs=1, warmup_epochs=1, pretrain_epochs=2, no_pretrain_epochs=1, seed=3,
               batch=16, quantize=("8",))
    board = pers.run(recordings, classes, [4], pers.Config(**cfg, trainer="board"), "watch", tmp_path, _silent)
    renode = pers.run(recordings, classes, [4], pers.Config(**cfg, trainer="renode"), "watch", tmp_path, _silent)
    for c in pers.CONDITIONS:
        assert renode.subjects[0].conditions[c] == board.subjects[0].conditions[c], c


def test_cli_writes_the_table_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["personalize", "--subjects", "4", "--input", "20", "--epochs", "1", "--warmup-epochs", "0",
                 "--pretrain-epochs", "1", "--no-pretrain-epochs", "2", "--out", str(out), "--cache",
                 str(tmp_path / "cache")]) == 0
    text = (out / "results.md").read_text()
    losses = {c: len(v["losses"]) for c, v in json.loads((out / "results.json").read_text())["subjects"][0][
        "conditions"].items()}
    assert losses == {"No Pers.": 0, "TL": 1, "Full": 1, "No Pretrain": 2}
    assert ("No Pretrain from random weights with Adam (lr 0.003) until its training loss stops falling by 1% in "
            "10 epochs, at most 2: 2 epochs") in text
    assert "Split: in time: each recording's first 50% personalizes and the rest tests, after a gap of 1 s" in text
    for condition in pers.CONDITIONS:
        assert f"| {condition} |" in text
    assert "| condition | macro F1 | accuracy | int8 F1 | agrees | 4-bit F1 | agrees |" in text
    assert "Adaptive inference of TL's 8-bit model: a cheap mode runs the same int8 network on the newest 10 of" in text
    assert "| no cheap mode: the whole window alone | 100% |" in text
    assert (out / "adaptive.png").exists()
    assert (out / "confusion.png").exists() and (out / "losses.png").exists() and (out / "results.json").exists()


def test_unknown_subject_and_bad_options_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["personalize", "--quantize", "3", "--out", "/tmp/none"]) == 2
    assert "weight bits '3': give 8, 4 or 2" in capsys.readouterr().err
    assert main(["personalize", "--quantize", "8,4", "--out", "/tmp/none"]) == 2
    assert "2 widths for 4 parameter layers" in capsys.readouterr().err
    assert main(["personalize", "--subjects", "42", "--out", "/tmp/none"]) == 2
    assert "subjects [42] are not in" in capsys.readouterr().err
    assert main(["personalize", "--dataset", "mnist"]) == 2
    assert "use watch, wisdm:PATH or table:PATH" in capsys.readouterr().err
    with pytest.raises(ValueError, match="trainer"):
        pers.Config(trainer="gpu")


def _tiny_dataset(labels_of: dict[int, int] | None = None) -> tuple[list[Recording], list[str]]:
    """Two subjects, two classes, 12 s each at 20 Hz: enough windows of 20 for a 1-epoch pretraining."""
    rng = np.random.default_rng(0)
    recordings = []
    for k, (subject, activity) in enumerate((s, c) for s in (1, 2) for c in (0, 1)):
        signal = rng.standard_normal((240, 3)).astype(np.float32) + activity  # the same whatever the label
        recordings.append(Recording(subject, (labels_of or {}).get(k, activity), signal, 20.0))
    return recordings, ["sit", "walk"]


def test_the_cache_key_covers_labels_and_the_class_list() -> None:
    recordings, classes = _tiny_dataset()
    relabelled, _ = _tiny_dataset({0: 1, 1: 0})  # the same signals, the labels of two recordings swapped
    cfg = pers.Config(input_len=20, stride=10)
    arch = paper_architecture(20, 3, 2)
    key = pers.cache_key(pers.dataset_fingerprint(recordings, classes), 1, cfg, arch)
    assert key == pers.cache_key(pers.dataset_fingerprint(recordings, list(classes)), 1, cfg, arch)
    assert key != pers.cache_key(pers.dataset_fingerprint(relabelled, classes), 1, cfg, arch)
    assert key != pers.cache_key(pers.dataset_fingerprint(recordings, ["walk", "sit"]), 1, cfg, arch)
    assert key != pers.cache_key(pers.dataset_fingerprint(recordings, classes), 2, cfg, arch)
    assert key != pers.cache_key(pers.dataset_fingerprint(recordings, classes), 1,
                                 pers.Config(input_len=20, stride=10, pretrain_epochs=31), arch)


def test_a_cached_model_is_not_reused_when_only_the_labels_change(tmp_path: Path) -> None:
    cfg = pers.Config(input_len=20, stride=10, epochs=1, warmup_epochs=0, pretrain_epochs=1, no_pretrain_epochs=1,
                      trainer="tf", quantize=())
    recordings, classes = _tiny_dataset()
    first = pers.run(recordings, classes, [1], cfg, "tiny", tmp_path, _silent).subjects[0]
    again = pers.run(recordings, classes, [1], cfg, "tiny", tmp_path, _silent).subjects[0]
    relabelled, _ = _tiny_dataset({2: 1, 3: 0})  # subject 2's recordings: the general model's training data
    other = pers.run(relabelled, classes, [1], cfg, "tiny", tmp_path, _silent)
    assert (first.general_model_cached, again.general_model_cached) == (False, True)
    assert again.general_model == first.general_model
    assert other.subjects[0].general_model != first.general_model and not other.subjects[0].general_model_cached
    assert len(list(tmp_path.glob("general-*.keras"))) == 2 and not list(tmp_path.glob("*partial*"))
    assert f"subject 1 `{other.subjects[0].general_model}` pretrained" in other.markdown("pyodl personalize")


def _without_tensorflow(calls: list[list[str]], cwd: Path | None = None) -> tuple[list[int], str, float]:
    """Runs ``main`` on each argument list in a fresh interpreter; returns the statuses and the stderr, and
    checks that TensorFlow was never imported. The seconds it took are returned for a loose bound: loading
    TensorFlow alone takes 5-20 s here."""
    code = ("import sys, time; t0 = time.perf_counter(); from pyodl.cli import main; "
            f"codes = [main(a) for a in {calls!r}]; "
            "print(codes, 'tensorflow' in sys.modules, time.perf_counter() - t0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=cwd)
    codes, loaded, seconds = proc.stdout.strip().rsplit(" ", 2)
    assert loaded == "False", proc.stdout + proc.stderr
    return json.loads(codes), proc.stderr, float(seconds)


def test_argument_errors_come_before_tensorflow() -> None:
    """A typo is reported in about a second: neither the refusal nor the dataset check loads TensorFlow."""
    codes, err, seconds = _without_tensorflow([
        ["personalize", "--subjects", "42"], ["personalize", "--subjects", "one"],
        ["personalize", "--dataset", "mnist"],
        ["personalize", "--optimizer", "adam:beta_1=2"], ["personalize", "--lr", "-1"],
        ["export", "--optimizer", "rmsprop"]])
    assert codes == [2, 2, 2, 2, 2, 2]
    assert "subjects [42] are not in" in err and "comma-separated subject numbers" in err
    assert "--optimizer: beta_1 must be in [0, 1)" in err and "unknown optimizer 'rmsprop'" in err
    assert "argument --lr: must be > 0" in err
    assert seconds < 10, seconds


def test_a_missing_model_file_is_reported_before_tensorflow(tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere.keras")
    codes, err, _ = _without_tensorflow([["export", missing], ["golden-check", missing], ["estimate", missing],
                                         ["fuzz", missing], ["personalize", "--model", missing]])
    assert codes == [2] * 5
    assert err.count("nowhere.keras: no such model file") == 5, err
    (tmp_path / "model.h5").write_bytes(b"")
    codes, err, _ = _without_tensorflow([["estimate", str(tmp_path / "model.h5")]])
    assert codes == [2] and "model.h5: expected a Keras 3 '.keras' file" in err


def _one_subject_csv(path: Path, seconds: int = 60) -> Path:
    rng = np.random.default_rng(0)
    rows = ["subject,label,ax,ay,az"]
    for label in ("sit", "walk"):
        rows += [f"7,{label},{a:.4f},{b:.4f},{c:.4f}" for a, b, c in rng.standard_normal((20 * seconds, 3))]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_one_subject_dataset_is_refused_before_any_pretraining(tmp_path: Path) -> None:
    """It used to pretrain on zero windows for 30 epochs, fail after 152 s, and cache a NaN normalisation."""
    csv = _one_subject_csv(tmp_path / "me.csv")
    codes, err, _ = _without_tensorflow([["personalize", "--dataset", f"table:{csv}", "--rate", "20", "--out",
                                          str(tmp_path / "out"), "--cache", str(tmp_path / "cache")]])
    assert codes == [2]
    assert "leave-one-subject-out needs recordings of at least 2 subjects" in err and "only subject 7" in err
    assert "--model MODEL.keras" in err and "Warning" not in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_data_too_short_for_a_models_window_is_refused_before_tensorflow(tmp_path: Path) -> None:
    from pyodl.model.keras_io import keras

    km = keras.Sequential([keras.Input((400, 3)), keras.layers.Conv1D(4, 3, activation="relu"),
                           keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2, activation="softmax")])
    km.save(tmp_path / "long.keras")
    csv = _one_subject_csv(tmp_path / "me.csv", seconds=30)  # 600 samples a recording: halves of 300 < 400
    codes, err, _ = _without_tensorflow([["personalize", "--dataset", f"table:{csv}", "--rate", "20", "--model",
                                          str(tmp_path / "long.keras"), "--out", str(tmp_path / "out")]])
    assert codes == [2]
    assert "subject 7: no personalization window of 400 samples with --split time" in err
    assert "its longest recording has 600 samples" in err


def test_a_window_longer_than_any_recording_is_refused_without_numpy_warnings() -> None:
    codes, err, _ = _without_tensorflow([["personalize", "--input", "4000", "--trainer", "tf"]])
    assert codes == [2] and "choose a shorter --input" in err and "Warning" not in err, err


def test_a_diverged_general_model_is_not_cached(tmp_path: Path) -> None:
    cfg = pers.Config(input_len=20, stride=10, pretrain_epochs=1, trainer="tf")
    arch = paper_architecture(20, 3, 2)
    x = np.full((8, 20, 3), 3e38, np.float32)  # finite inputs whose products overflow to inf, then NaN
    train = pers.Windows(x, np.zeros(8, np.int64), np.ones(8, np.int64))
    norm = pers.Normalizer(np.zeros(3, np.float32), np.ones(3, np.float32))
    with pytest.raises(ValueError, match="diverged"):
        pers.pretrain(train, arch, cfg, tmp_path, "k", norm, _silent)
    assert list(tmp_path.iterdir()) == []


def test_a_normalisation_that_is_not_finite_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="finite means"):
        pers.Normalizer(np.array([np.nan], np.float32), np.ones(1, np.float32))
    with pytest.raises(ValueError, match="no window"):
        pers.Normalizer.fit(np.zeros((0, 20, 3), np.float32))
    (tmp_path / "m.norm.json").write_text('{"mean": [NaN], "std": [1.0]}')
    with pytest.raises(ValueError, match=r"m\.norm\.json: a normalisation needs"):
        pers.Normalizer.load(tmp_path / "m.norm.json")


def test_your_model_through_the_board_and_tensorflow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A tutorial-style HAR model (padding='same', BatchNormalization, MaxPooling1D, Dropout, ReLU6)
    personalized on the board and in TensorFlow on the same batches: the same F1 to 0.005."""
    from pyodl.model.keras_io import keras

    layers = keras.layers
    km = keras.Sequential([keras.Input((20, 3)), layers.Conv1D(8, 3, padding="same"), layers.BatchNormalization(),
                           layers.ReLU(), layers.MaxPooling1D(2), layers.Dropout(0.2),
                           layers.Conv1D(8, 3, activation="relu6"),
                           layers.GlobalAveragePooling1D(), layers.Dense(16, activation="relu"),
                           layers.Dense(7, activation="softmax")])
    path = tmp_path / "mine.keras"
    km.save(path)
    results = {}
    for trainer in ("board", "tf"):
        out = tmp_path / trainer
        assert main(["personalize", "--model", str(path), "--subjects", "2", "--epochs", "2", "--warmup-epochs", "1",
                     "--no-pretrain-epochs", "2", "--trainer", trainer, "--out", str(out), "--no-cache"]) == 0
        results[trainer] = json.loads((out / "results.json").read_text())
    text = (tmp_path / "board" / "results.md").read_text()
    assert "general model: mine.keras, used as is" in text and "channels: ax, ay, az (the first 3" in text
    assert "TL trains the last 2 of 5 parameter layers (the model's Dense head)" in text
    assert "note: layer 'dropout" in text
    for c in pers.CONDITIONS:
        f1 = [results[t]["subjects"][0]["conditions"][c]["f1"] for t in ("board", "tf")]
        assert abs(f1[0] - f1[1]) <= 0.005, (c, f1)


def test_recording_split_sends_whole_recordings_to_the_test_side() -> None:
    recordings, _ = _tiny_dataset()
    extra = Recording(1, 0, np.zeros((240, 3), np.float32), 20.0)  # a second recording of class 0
    pers_w, test_w, untested = recording_split([r for r in recordings if r.subject == 1] + [extra], 20, 10)
    assert untested == [1]  # class 1 has one recording: it personalizes, nothing tests it
    assert set(test_w.y.tolist()) == {0} and np.all(test_w.x == 0)  # the second recording, whole
    assert len(pers_w) == 2 * len(test_w)


def test_personalize_option_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["personalize", "--pretrain"]) == 2
    assert "--pretrain applies to --model" in capsys.readouterr().err
    assert main(["personalize", "--model", str(tmp_path / "none.keras")]) == 2
    assert "none.keras: no such model file" in capsys.readouterr().err
    assert main(["personalize", "--channels", "ax,gravity"]) == 2
    assert "'gravity' is neither a channel index below 6 nor one of ax, ay, az" in capsys.readouterr().err
    assert main(["personalize", "--trainable-layers", "9", "--subjects", "1"]) == 2
    assert "between 1 and 4" in capsys.readouterr().err


def test_a_real_board_over_serial_trains_exactly_as_the_simulated_one(
        watch: tuple[list, list[str]], tmp_path: Path, paper_board: UnicornBoard,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """--trainer serial on a board behind a TCP socket: each condition's firmware is programmed when the board
    runs another model, every window goes over the UART, and the results are the simulated board's, bit for
    bit (the same firmware trains on the same batches)."""
    from pyodl.board import programmer
    from pyodl.board.tcp_bridge import TcpBridge

    recordings, classes = watch
    cfg = dict(input_len=20, stride=10, epochs=1, warmup_epochs=0, pretrain_epochs=1, no_pretrain_epochs=1, seed=4,
               quantize=("8",))
    board = pers.run(recordings, classes, [4], pers.Config(**cfg, trainer="board"), "watch", tmp_path, _silent)
    bridge = TcpBridge(paper_board)  # the board runs the paper's model at T=40 to begin with
    programmed: list[Path] = []

    def program(elf: Path, tool: str) -> str:
        programmed.append(elf)
        bridge.load(elf)
        return ""

    monkeypatch.setattr(programmer, "program", program)
    monkeypatch.setattr(programmer.shutil, "which", lambda name: f"/usr/bin/{name}")
    with bridge as port:
        url = f"socket://127.0.0.1:{port}"
        serial = pers.run(recordings, classes, [4], pers.Config(**cfg, trainer="serial", port=url, tool="openocd"),
                          "watch", tmp_path, _silent)
    assert bridge.error is None, bridge.error
    for condition in pers.CONDITIONS:
        b, s = board.subjects[0].conditions[condition], serial.subjects[0].conditions[condition]
        assert (b.f1, b.accuracy, b.losses) == (s.f1, s.accuracy, s.losses), condition
    # No Pers. and Full run the general model's Full build (its parameters set again in between); TL and No
    # Pretrain need builds of their own.
    assert len(programmed) == 3


def test_an_interrupted_run_is_taken_up_subject_by_subject(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A 17-minute run used to lose everything to a Ctrl-C: each subject is now saved as it finishes, and
    --resume computes only the missing ones, for the same settings only."""
    from dataclasses import asdict, replace

    from pyodl.experiments.checkpoint import Checkpoint

    recordings, classes = _tiny_dataset()
    cfg = pers.Config(input_len=20, stride=10, epochs=1, warmup_epochs=0, pretrain_epochs=1, no_pretrain_epochs=1,
                      trainer="tf", quantize=("8",))
    folder = tmp_path / "out" / "subjects"
    first = pers.run(recordings, classes, [1, 2], cfg, "tiny", tmp_path / "cache", _silent,
                     checkpoint=Checkpoint(folder, resume=False))
    assert sorted(p.name for p in folder.iterdir()) == ["run.json", "subject-1.json", "subject-2.json"]
    assert pers.SubjectResult.from_json(json.loads((folder / "subject-2.json").read_text())) == first.subjects[1]
    assert asdict(pers.SubjectResult.from_json(asdict(first.subjects[0]))) == asdict(first.subjects[0])

    # As if interrupted during subject 2; subject 1's saved result marked, to see it taken up, not recomputed.
    (folder / "subject-2.json").unlink()
    saved = json.loads((folder / "subject-1.json").read_text())
    saved["conditions"]["TL"]["f1"] = 0.125
    (folder / "subject-1.json").write_text(json.dumps(saved))
    computed: list[int] = []
    real = pers.run_subject
    monkeypatch.setattr(pers, "run_subject", lambda **job: computed.append(job["subject"]) or real(**job))
    again = pers.run(recordings, classes, [1, 2], cfg, "tiny", tmp_path / "cache", _silent,
                     checkpoint=Checkpoint(folder, resume=True))
    assert computed == [2] and again.subjects[0].conditions["TL"].f1 == 0.125
    assert again.subjects[1].conditions["TL"].f1 == first.subjects[1].conditions["TL"].f1
    assert "resumed: subjects [1] taken up from the results an earlier run saved" in again.setup
    assert (folder / "subject-2.json").is_file()

    with pytest.raises(ValueError, match="written by a run with other settings, data or general model"):
        pers.run(recordings, classes, [1, 2], replace(cfg, epochs=2), "tiny", tmp_path / "cache", _silent,
                 checkpoint=Checkpoint(folder, resume=True))
    with pytest.raises(ValueError, match="holds no saved subject"):
        pers.run(recordings, classes, [1], cfg, "tiny", tmp_path / "cache", _silent,
                 checkpoint=Checkpoint(tmp_path / "elsewhere", resume=True))
    # A new run into the folder replaces the earlier run's subjects at its first save.
    pers.run(recordings, classes, [2], replace(cfg, epochs=2), "tiny", tmp_path / "cache", _silent,
             checkpoint=Checkpoint(folder, resume=False))
    assert sorted(p.name for p in folder.iterdir()) == ["run.json", "subject-2.json"]


class _ScriptedTrainer:
    """A trainer whose mean loss per epoch follows a script: what fit_epochs' stopping rule reads."""

    def __init__(self, losses: list[float]) -> None:
        self.losses, self.epoch, self.steps = losses, 0, 0

    def train_step(self, xs: np.ndarray, ys: np.ndarray, learning_rate: float) -> float:
        self.steps += 1
        return self.losses[self.epoch]


def test_no_pretrain_stops_once_its_loss_stops_falling() -> None:
    """The stated rule instead of a fixed 200: stop when the loss has not fallen 1% below its best for
    `patience` epochs; a loss still falling by more runs the whole budget."""
    data = pers.Windows(np.zeros((8, 20, 3), np.float32), np.zeros(8, np.int64), np.zeros(8, np.int64))
    flat = [2.0, 1.5, 1.2] + [1.195] * 20
    trainer = _ScriptedTrainer(flat)

    def advance(what: str, done: int, total: int) -> None:
        trainer.epoch = min(done, len(flat) - 1)

    got = pers.fit_epochs(trainer, data, 20, 4, 0.01, np.random.default_rng(0), advance, "np", patience=5)  # type: ignore[arg-type]
    assert got == flat[:8]  # epochs 4-8 stayed within 1% of 1.2: stopped after the fifth
    falling = [2.0 * 0.97**k for k in range(30)]
    trainer = _ScriptedTrainer(falling)
    got = pers.fit_epochs(trainer, data, 20, 4, 0.01, np.random.default_rng(0), advance, "np", patience=5)  # type: ignore[arg-type]
    assert len(got) == 20
    trainer = _ScriptedTrainer(flat)
    assert len(pers.fit_epochs(trainer, data, 20, 4, 0.01, np.random.default_rng(0), advance, "np")) == 20  # type: ignore[arg-type]


def test_no_pretrain_trains_with_its_own_optimizer_and_learning_rate(
        watch: tuple[list, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TL and Full fine-tune with --optimizer and --lr (the paper's SGD at 0.01); No Pretrain, from random
    weights, with --no-pretrain-optimizer and --no-pretrain-lr: each trainer is opened with its condition's
    optimizer and every epoch runs at its condition's learning rate."""
    recordings, classes = watch
    opened: list[str] = []
    rates: dict[str, set[float]] = {}
    real_open, real_fit = pers.open_trainer, pers.fit_epochs

    def open_recording(kind: str, model: object, capacity: object, work: Path, progress: object,
                       optimizer: pers.Optimizer, *rest: object) -> object:
        opened.append(optimizer.kind)
        return real_open(kind, model, capacity, work, progress, optimizer, *rest)  # type: ignore[arg-type]

    def fit_recording(trainer: object, data: object, epochs: int, batch: int, learning_rate: float,
                      *rest: object, **kw: object) -> list[float]:
        rates.setdefault(str(rest[2]).rsplit(" ", 1)[-1], set()).add(learning_rate)
        return real_fit(trainer, data, epochs, batch, learning_rate, *rest, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(pers, "open_trainer", open_recording)
    monkeypatch.setattr(pers, "fit_epochs", fit_recording)
    cfg = pers.Config(input_len=20, stride=10, epochs=1, warmup_epochs=1, pretrain_epochs=1, no_pretrain_epochs=1,
                      trainer="tf", quantize=(), learning_rate=0.02, no_pretrain_learning_rate=0.005)
    pers.run(recordings, classes, [3], cfg, "watch", tmp_path, _silent)
    assert opened == ["sgd", "sgd", "adam"]  # TL, Full, No Pretrain
    assert rates == {"TL": {0.02}, "Full": {0.02}, "Pretrain": {0.005}}
