"""Subjects in worker processes (``--workers N``): the same report as one after the other, in the order asked
for; a failing subject fails the run with its own error."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest

from pyodl.experiments import personalize as pers
from pyodl.experiments import stream as st
from pyodl.experiments.workers import run_each


def _silent(what: str, done: int, total: int) -> None:
    pass


def test_workers_keep_the_jobs_order_and_raise_the_first_failure() -> None:
    # str.format pickles and takes the keywords, progress included; "{x:d}" fails on a string.
    seen: list[tuple[str, int, int]] = []
    jobs = [{"x": 16}, {"x": 9}, {"x": 1}]
    assert run_each("{x}".format, jobs, 2, lambda *a: seen.append(a)) == ["16", "9", "1"]
    assert seen[0] == ("subjects", 0, 3) and seen[-1] == ("subjects", 3, 3)
    assert run_each("{x} {progress.__name__}".format, jobs, 2, _silent) == ["16 quiet", "9 quiet", "1 quiet"]
    assert run_each("{x} {progress.__name__}".format, jobs, 1, _silent) == ["16 _silent", "9 _silent", "1 _silent"]
    with pytest.raises(ValueError, match="Unknown format code 'd'"):
        run_each("{x:d}".format, [{"x": 4}, {"x": "a"}, {"x": 9}], 2, _silent)
    with pytest.raises(ValueError, match="workers must be >= 1"):
        run_each("{x}".format, jobs, 0, _silent)


def test_personalize_with_two_workers_gives_the_sequential_table(watch: tuple[list, list[str]],
                                                                  tmp_path: Path) -> None:
    recordings, classes = watch
    cfg = pers.Config(input_len=20, stride=10, epochs=2, warmup_epochs=1, pretrain_epochs=1, no_pretrain_epochs=2,
                      seed=4, trainer="board")
    # The workers pretrain (in parallel, into the cache); the sequential run then finds those general models,
    # so the comparison covers everything after pretraining: the board's training and the evaluation.
    parallel = pers.run(recordings, classes, [6, 1], cfg, "watch", tmp_path, _silent, workers=2)
    sequential = pers.run(recordings, classes, [6, 1], cfg, "watch", tmp_path, _silent)
    assert [s.subject for s in parallel.subjects] == [6, 1]
    assert [s.general_model_cached for s in sequential.subjects] == [True, True]
    for p, s in zip(parallel.subjects, sequential.subjects, strict=True):
        assert {**asdict(p), "general_model_cached": None} == {**asdict(s), "general_model_cached": None}
    def table(report: pers.Report) -> list[str]:
        return [line for line in report.markdown("cmd").splitlines() if line.startswith("|")]

    assert table(parallel) == table(sequential)


def test_stream_with_two_workers_gives_the_sequential_runs(watch: tuple[list, list[str]], tmp_path: Path) -> None:
    recordings, classes = watch
    cfg = st.Config(input_len=20, stride=10, pretrain_epochs=1, trainer="board", max_windows=30, replay=16, batch=4)
    sequential = st.run(recordings, classes, [2, 3], cfg, "watch", tmp_path, _silent)
    parallel = st.run(recordings, classes, [2, 3], cfg, "watch", tmp_path, _silent, workers=2)
    assert [asdict(s) for s in parallel.subjects] == [asdict(s) for s in sequential.subjects]
