"""Every figure the experiments write, checked for what a reader would stumble on and a test can measure:
nothing cut by the figure's edge, legends of at least 9 pt that cover no title or label, a colour bar
on the confusion matrices, every count readable on its cell, the class abbreviations spelled out.

The reports are made up (no training): the figures depend only on the numbers in them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.colors import to_rgb

from pyodl.data.watch import EXERCISES
from pyodl.experiments import federate as fed
from pyodl.experiments import personalize as pers
from pyodl.experiments import stream as st
from pyodl.experiments.plots import class_key, layout_problems, pyplot, wrap

WATCH = list(EXERCISES)
MakeReport = Callable[..., pers.Report]  # the personalize_report fixture (conftest.py)


RUNS = ("static", "always", "agreement", "agreement, no detector", "budget", "random", "agreement + self-labels",
        "budget + self-labels", "agreement + exploration", "budget + exploration", "random ~ budget + exploration")


def stream_report(drift: bool = True) -> st.Report:
    rng = np.random.default_rng(1)
    subjects = []
    for s in (1, 2):
        runs = {}
        for k, name in enumerate(RUNS):
            queried = (rng.random(300) < (0 if name == "static" else 1 if name == "always" else 0.3)).astype(int)
            runs[name] = st.RunResult(name, int(queried.sum()), 300, 481 * int(queried.sum()), 0.8, 0.7,
                                      0.8 + 0.01 * k, 0.7, 75, 10**6, 0.4, 0, None,
                                      (rng.random(300) < 0.8).astype(int).tolist(), queried.tolist())
        subjects.append(st.SubjectStream(s, 0, 150 if drift else None, 100, runs))
    return st.Report(st.Config(), "the seglearn watch dataset", WATCH, subjects, 10.0)


def federate_report() -> fed.Report:
    rounds = [fed.RoundResult(r, [1, 2, 3], {3: "BoardError: ..."} if r == 2 else {}, 1.0 / r,
                              {c: 0.2 * r for c in (1, 2, 3)}, {c: 0.25 * r for c in (1, 2, 3)} if r % 2 == 0 else {},
                              {c: 0.3 for c in (1, 2, 3)}, {}, {}, 1.0) for r in range(1, 5)]
    central = [fed.EvaluateReply(c, 100, 0.85, 0.86, 0.89, 0.9) for c in (1, 2, 3)]
    return fed.Report(fed.Config(rounds=4), "the seglearn watch dataset", WATCH, [1, 2, 3], 10135, rounds, central,
                      121620, {1: 100, 2: 100, 3: 100}, 5.0)


# Each takes personalize_report, the made-up personalize report (conftest.py).
FIGURES: dict[str, Callable[[MakeReport], Any]] = {
    "confusion.png": lambda make: pers.confusion_figure(make()),
    "confusion.png, 10 subjects": lambda make: pers.confusion_figure(make(subjects=10)),
    "confusion.png, WISDM's class names": lambda make: pers.confusion_figure(make(
        ["Downstairs", "Jogging", "Sitting", "Standing", "Upstairs", "Walking"])),
    "losses.png": lambda make: pers.losses_figure(make()),
    "losses.png, 10 subjects": lambda make: pers.losses_figure(make(subjects=10)),
    "adaptive.png": lambda make: pers.adaptive_figure(make()),
    "stream.png": lambda make: st.stream_figure(stream_report()),
    "pruning.png": lambda make: st.pruning_figure(stream_report()),
    "rounds.png": lambda make: fed.rounds_figure(federate_report()),
}


@pytest.mark.parametrize("name", FIGURES)
def test_nothing_is_cut_off_and_legends_are_readable(name: str, personalize_report: MakeReport) -> None:
    fig = FIGURES[name](personalize_report)
    try:
        assert layout_problems(fig) == []
    finally:
        pyplot().close(fig)


def test_the_checker_sees_a_clipped_title_a_small_legend_and_a_covered_title() -> None:
    """layout_problems itself: the old confusion.png's clipped titles (tight_layout with a square image per
    panel) and losses.png's 6 pt legend."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4, 2))
    ax.plot([0, 1], label="a line")
    ax.legend(fontsize=6)
    ax.set_title("a title far too long for this small figure, which it runs out of")
    fig.legend(["over the title"], loc="upper center", fontsize=12)
    problems = layout_problems(fig)
    plt.close(fig)
    assert any("cut by the figure's edge" in p for p in problems), problems
    assert "legend entry 'a line' is 6 pt (< 9)" in problems
    assert any(p.startswith("a legend covers 'a title far too long") for p in problems), problems


def _luminance(rgb: tuple[float, float, float]) -> float:
    """WCAG 2's relative luminance, written out here so that a mistake in pyodl's copy cannot hide."""
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_confusion_has_one_colour_bar_and_every_count_reads_on_its_cell(personalize_report: MakeReport) -> None:
    report = personalize_report()
    fig = pers.confusion_figure(report)
    try:
        bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
        panels = [ax for ax in fig.axes if ax.images]
        assert len(bars) == 1 and len(panels) == len(pers.CONDITIONS)
        assert bars[0].get_ylabel(), "the colour bar says what it counts"
        norms = {(ax.images[0].norm.vmin, ax.images[0].norm.vmax) for ax in panels}
        assert len(norms) == 1, f"one colour scale for every panel, so that the colour bar holds: {norms}"
        darkest = 21.0
        for ax in panels:
            image = ax.images[0]
            cells = np.asarray(image.get_array())
            assert len(ax.texts) == cells.size
            for t in ax.texts:
                j, i = (round(v) for v in t.get_position())
                assert t.get_text() == str(cells[i, j])
                cell = to_rgb(image.cmap(image.norm(cells[i, j])))
                ratio = _contrast(to_rgb(t.get_color()), cell)
                darkest = min(darkest, _luminance(cell))
                # WCAG 2's minimum for normal text; black or white chosen by brightness always reaches 4.58.
                assert ratio >= 4.5, f"{ax.get_title()}: count {t.get_text()} at ({i}, {j}), contrast {ratio:.2f}"
                assert t.get_fontsize() >= 8
        assert darkest < 0.1, "the made-up report has dark cells, where a black count would not read"
    finally:
        pyplot().close(fig)


def test_the_class_abbreviations_are_spelled_out(personalize_report: MakeReport) -> None:
    fig = pers.confusion_figure(personalize_report())
    try:
        caption = " ".join(t.get_text() for t in fig.texts).replace("\n", " ")
        for abbreviation, full in EXERCISES.items():
            assert f"{abbreviation}: {full}" in caption
    finally:
        pyplot().close(fig)
    text = personalize_report().markdown("pyodl personalize")
    assert "Classes: PEN: pendulum; ABD: abduction;" in text
    assert text.index("Classes: PEN") < text.index("![confusion matrices](confusion.png)")
    # Names that are no known abbreviations get no key (WISDM's are words already).
    assert class_key(["Walking", "Jogging"]) is None
    assert "Classes:" not in personalize_report(["Walking", "Jogging"]).markdown("pyodl personalize")


def test_a_caption_breaks_between_entries_only() -> None:
    key = class_key(WATCH)
    assert key is not None
    lines = wrap(key, 6.0).split("\n")
    assert len(lines) > 1 and all(line.endswith(";") for line in lines[:-1])
    for width in (3.0, 6.0, 12.0):  # every entry whole on one line, however narrow the figure
        lines = wrap(key, width).split("\n")
        assert all(any(f"{c}: {name}" in line for line in lines) for c, name in EXERCISES.items()), lines


def test_losses_has_a_panel_per_trained_condition_and_marks_the_warm_up(personalize_report: MakeReport) -> None:
    report = personalize_report(subjects=4)
    fig = pers.losses_figure(report)
    try:
        panels = [ax for ax in fig.axes if ax.lines]
        assert [ax.get_title().split(":")[0] for ax in panels] == ["TL", "Full", "No Pretrain"]
        for ax in panels:  # one line per subject, the same colour for a subject in every panel
            assert [line.get_label() for line in ax.lines] == [f"subject {s}" for s in (1, 2, 3, 4)]
        colours = {tuple(to_rgb(line.get_color())) for ax in panels for line in ax.lines}
        assert len(colours) == 4
        labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
        assert any(label.startswith("Full's warm-up") for label in labels)
        for ax in panels:  # epochs count from 1, in whole numbers
            low, high = ax.get_xlim()
            shown = [x for x in ax.get_xticks() if low <= x <= high]
            assert ax.lines[0].get_xdata()[0] == 1 and all(x >= 1 and float(x).is_integer() for x in shown), shown
        assert "TensorFlow" in fig.texts[0].get_text() or "firmware" in fig.texts[0].get_text()
    finally:
        pyplot().close(fig)


def test_stream_marks_the_drift_only_when_there_is_one() -> None:
    for drift in (True, False):
        fig = st.stream_figure(stream_report(drift))
        try:
            caption = " ".join(t.get_text() for t in fig.texts)
            assert ("dashed line: the drift" in caption) is drift
        finally:
            pyplot().close(fig)


def test_rounds_explains_the_dropped_round_marker() -> None:
    fig = fed.rounds_figure(federate_report())
    try:
        labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        assert sum(label.startswith("a client dropped") for label in labels) == 1
    finally:
        pyplot().close(fig)


def test_plot_writes_every_file(tmp_path: Path, personalize_report: MakeReport) -> None:
    pers.plot(personalize_report(), tmp_path)
    st.plot(stream_report(), tmp_path)
    fed.plot(federate_report(), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adaptive.png", "confusion.png", "losses.png",
                                                         "pruning.png", "rounds.png", "stream.png"]
    assert not pyplot().get_fignums(), "every figure is closed once saved"
