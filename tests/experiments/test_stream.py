"""The stream experiment on the watch data: the board and TensorFlow make the same decisions (the same windows
queried, the same steps) and reach the same scores; the drift scenarios build the streams they say."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pyodl.data import Normalizer
from pyodl.experiments import stream as st
from pyodl.model.architecture import Model


def _silent(what: str, done: int, total: int) -> None:
    pass


def test_board_and_tensorflow_query_the_same_windows(watch: tuple[list, list[str]], tmp_path: Path) -> None:
    recordings, classes = watch
    cfg = dict(input_len=20, stride=10, pretrain_epochs=2, max_windows=90, replay=48, batch=8, train_every=3,
               budget=0.4, disagree_target=0.3, floor=0.05)
    board = st.run(recordings, classes, [3], st.Config(**cfg, trainer="board"), "watch", tmp_path, _silent)
    tf = st.run(recordings, classes, [3], st.Config(**cfg, trainer="tf"), "watch", tmp_path, _silent)
    for name, b in board.subjects[0].runs.items():
        t = tf.subjects[0].runs[name]
        # The decisions compare each confidence with the threshold; the two sides' probabilities agree to ~1e-7,
        # so only a confidence that close to a threshold could flip one.
        assert b.queried == t.queried and b.steps == t.steps, name
        assert abs(b.test_f1 - t.test_f1) <= 0.005 and abs(b.stream_f1 - t.stream_f1) <= 0.005, name
    runs = board.subjects[0].runs
    assert runs["always"].queries == 90 and 0 < runs["agreement"].queries < 90 and runs["static"].queries == 0
    assert runs["always"].steps == (90 - 1) // 3  # the step due after every 3rd window comes with the next one


@pytest.mark.parametrize("drift", st.DRIFTS)
def test_each_drift_builds_the_stream_it_says(watch: tuple[list, list[str]], drift: str) -> None:
    recordings, _ = watch
    cfg = st.Config(drift=drift)
    stream, test, at = st.build_stream(recordings, 2, cfg)
    assert len(stream) > 0 and len(test) > 0
    if drift == "none":
        assert at is None
        return
    assert 0 < at < len(stream)
    if drift == "rotation":  # the second half is the first's quarter turn: same norms, other axes
        plain, _, _ = st.build_stream(recordings, 2, st.Config())
        assert np.allclose(np.linalg.norm(stream.x[at:], axis=-1), np.linalg.norm(plain.x[at:], axis=-1), atol=1e-5)
        assert np.allclose(stream.x[at:, :, 0], -plain.x[at:, :, 1]) and np.array_equal(stream.x[:at], plain.x[:at])
    if drift == "subject":
        assert set(stream.subject[:at]) == {2} and set(stream.subject[at:]) == {3} and set(test.subject) == {3}
    if drift == "new-class":  # class 0 only after the drift, every class in the test
        assert 0 not in set(stream.y[:at]) and set(stream.y[at:]) == {0} and 0 in set(test.y)


def test_the_new_class_drift_starts_from_a_general_model_without_it(watch: tuple[list, list[str]],
                                                                    tmp_path: Path) -> None:
    recordings, classes = watch
    cfg = dict(input_len=20, stride=10, pretrain_epochs=1, trainer="tf")
    # Subject 4: the fewest windows of the watch data (a whole stream runs).
    report = st.run(recordings, classes, [4], st.Config(**cfg, drift="new-class", new_class=2), "watch", tmp_path,
                    _silent)
    static = report.subjects[0].runs["static"]
    at = report.subjects[0].drift_index
    assert at is not None and sum(static.correct[at:]) <= 0.2 * (len(static.correct) - at)  # class 2 is new to it
    st.run(recordings, classes, [4], st.Config(**cfg, max_windows=10), "watch", tmp_path, _silent)
    assert len(list(tmp_path.glob("general-*.keras"))) == 2  # its own cache entry beside the usual model


def test_the_wide_teacher_is_a_bigger_model_pretrained_on_every_class(watch: tuple[list, list[str]],
                                                                       tmp_path: Path) -> None:
    from pyodl.model.keras_io import load
    from pyodl.reference.golden import KerasReference

    recordings, classes = watch
    cfg = st.Config(input_len=20, stride=10, pretrain_epochs=1, trainer="tf", teacher="wide", drift="new-class",
                    new_class=2, max_windows=60)
    st.run(recordings, classes, [5], cfg, "watch", tmp_path, _silent)
    def count(model: Model) -> int:
        return sum(w.size + b.size for w, b in model.params)

    # The device's general model never saw class 2; the phone's wide teacher did, and is ~9x bigger.
    device, teacher = sorted((load(p) for p in tmp_path.glob("general-*.keras")), key=count)
    assert count(teacher) > 8 * count(device)
    assert teacher.arch.num_classes == device.arch.num_classes == len(classes)
    # Trained on class 2: it names it for most of the subject's class-2 windows (the device's general model for
    # none, test_the_new_class_drift...).
    stream, _, _ = st.build_stream(recordings, 5, cfg)
    norm = Normalizer.load(next(p for p in tmp_path.glob("general-*.norm.json")))
    predicted = KerasReference(teacher).predict_classes(norm(stream.x[stream.y == 2]))
    assert np.mean(predicted == 2) > 0.5


def test_repeats_draw_again_from_the_same_start(watch: tuple[list, list[str]], tmp_path: Path) -> None:
    recordings, classes = watch
    cfg = dict(input_len=20, stride=10, pretrain_epochs=1, trainer="tf", max_windows=60, batch=8)
    once = st.run(recordings, classes, [2], st.Config(**cfg), "watch", tmp_path, _silent)
    twice = st.run(recordings, classes, [2], st.Config(**cfg, repeats=2), "watch", tmp_path, _silent)
    assert [(s.subject, s.repeat) for s in twice.subjects] == [(2, 0), (2, 1)]
    first, second = (s.runs for s in twice.subjects)
    assert first["random"].queried == once.subjects[0].runs["random"].queried  # repeat 0: the seed's draws
    assert first["random"].queried != second["random"].queried  # repeat 1: other draws
    assert first["static"] == second["static"]
    summary = twice.summary()["random"]
    assert summary["test_accuracy"] == (first["random"].test_accuracy + second["random"].test_accuracy) / 2
    assert "| 2 | 60 |" in twice.markdown("cmd")  # one row per subject


def test_the_subject_drift_hands_the_device_to_someone_the_general_model_never_saw(
        watch: tuple[list, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recordings, classes = watch
    seen: list[set[int]] = []
    pretrain = st.pers.pretrain

    def spy(train, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(set(np.unique(train.subject).tolist()))
        return pretrain(train, *args, **kwargs)

    monkeypatch.setattr(st.pers, "pretrain", spy)
    cfg = st.Config(input_len=20, stride=10, pretrain_epochs=1, trainer="tf", drift="subject", max_windows=20)
    st.run(recordings, classes, [3], cfg, "watch", tmp_path, _silent)
    assert st.next_subject(recordings, 3) == 4 and seen == [set(range(1, 11)) - {3, 4}]
    st.run(recordings, classes, [3], st.Config(**{**cfg.__dict__, "drift": "side"}), "watch", tmp_path, _silent)
    assert seen[1] == set(range(1, 11)) - {3}
    assert len(list(tmp_path.glob("general-*.keras"))) == 2  # each its own cache entry
