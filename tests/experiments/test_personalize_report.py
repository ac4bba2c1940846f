"""What personalize's results.md says of the run: how the general model came about (pretrained here, or a
model given with --model used as is) and, when adaptive inference could not run, why."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from pyodl.data.recording import Recording
from pyodl.experiments import personalize as pers
from pyodl.model.architecture import Architecture, Kind, LayerSpec, Model, glorot_params, paper_architecture


def _silent(what: str, done: int, total: int) -> None:
    pass


def _padded(input_len: int = 20, classes: int = 2) -> Architecture:
    """A tutorial-style HAR model: its first Conv1D keeps the length with padding='same'."""
    return Architecture.build("mine", input_len, 3, [
        LayerSpec(Kind.CONV1D, "same_conv", units=8, size=3, activation="relu", padding="same"),
        LayerSpec(Kind.CONV1D, "conv", units=8, size=3, activation="relu"),
        LayerSpec(Kind.GAP1D, "gap"),
        LayerSpec(Kind.DENSE, "out", units=classes, activation="softmax")])


def test_a_model_used_as_is_is_not_said_to_be_pretrained(personalize_report: Callable[..., pers.Report]) -> None:
    text = personalize_report(general_model="").markdown("pyodl personalize --model mine.keras")
    assert "general model given with --model and used as is (not pretrained by this run)" in text
    assert "pretrained 30 epochs" not in text
    pretrained = personalize_report(general_model="0123abcd").markdown("pyodl personalize")
    assert "general model pretrained 30 epochs (Adam)" in pretrained and "used as is" not in pretrained


def test_why_a_model_has_no_cheap_mode() -> None:
    assert pers.adaptive_obstacle(paper_architecture(40, 3, 7), 20) == ""
    assert pers.adaptive_obstacle(paper_architecture(40, 3, 7), 0) == ""  # no cheap mode asked for
    padded = pers.adaptive_obstacle(_padded(40), 20)
    assert padded.startswith("layer 'same_conv' pads its input (padding='same')"), padded
    flatten = Architecture.build("flat", 40, 3, [LayerSpec(Kind.CONV1D, "c", units=4, size=3),
                                                 LayerSpec(Kind.FLATTEN, "flatten"),
                                                 LayerSpec(Kind.DENSE, "out", units=7, activation="softmax")])
    assert pers.adaptive_obstacle(flatten, 20).startswith("layer 'flatten' (Flatten) takes a fixed number of rows (38)")
    assert "reads 9 rows at a time" in pers.adaptive_obstacle(
        Architecture.build("wide", 40, 3, [LayerSpec(Kind.CONV1D, "k9", units=4, size=9), LayerSpec(Kind.GAP1D, "g"),
                                           LayerSpec(Kind.DENSE, "out", units=7, activation="softmax")]), 5)


def test_results_md_says_why_adaptive_inference_was_skipped(personalize_report: Callable[..., pers.Report]) -> None:
    why = pers.adaptive_obstacle(_padded(40), 20)
    text = personalize_report(adaptive=False, adaptive_skipped=why).markdown("pyodl personalize")
    assert ("Adaptive inference (a cheap mode on the newest 20 of the 40 rows) was skipped: layer 'same_conv' pads "
            "its input (padding='same')") in text
    assert "adaptive.png" not in text
    assert "was skipped" not in personalize_report().markdown("pyodl personalize")  # it ran


def test_a_padded_model_used_as_is_end_to_end(tmp_path: Path) -> None:
    """run() hands the reason to the report: a model with padding='same', given and used as is, trained by
    TensorFlow on a two-subject dataset (seconds)."""
    rng = np.random.default_rng(0)
    recordings = [Recording(s, c, rng.standard_normal((240, 3)).astype(np.float32) + c, 20.0)
                  for s in (1, 2) for c in (0, 1)]
    arch = _padded()
    general = pers.GeneralModel("mine.keras", Model(arch, glorot_params(arch, 0)), pretrain=False)
    cfg = pers.Config(input_len=20, stride=10, epochs=1, warmup_epochs=0, no_pretrain_epochs=1, trainer="tf",
                      quantize=("8",))
    report = pers.run(recordings, ["sit", "walk"], [1], cfg, "tiny", tmp_path, _silent, general)
    text = report.markdown("pyodl personalize --model mine.keras")
    assert "used as is (not pretrained by this run)" in text and "pretrained 30 epochs" not in text
    assert "Adaptive inference (a cheap mode on the newest 10 of the 20 rows) was skipped: layer 'same_conv'" in text
    assert report.to_json()["adaptive_skipped"] == report.adaptive_skipped != ""


def test_one_subject_has_no_spread_to_show(personalize_report: Callable[..., pers.Report]) -> None:
    """One subject printed "0.742 ± 0.000" in every cell, as if it had been measured to have no spread."""
    one = personalize_report(subjects=1).markdown("pyodl personalize --subjects 1")
    assert "±" not in one and "One subject: its own scores, no spread." in one
    three = personalize_report(subjects=3).markdown("pyodl personalize")
    assert "| No Pers. | " in three and " ± " in three.split("| No Pers. | ")[1].split("\n")[0]
    assert "Means over subjects; ± is the standard deviation over subjects." in three
