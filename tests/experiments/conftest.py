"""What the experiments' tests share: the bundled watch dataset, loaded once, and a made-up personalize report
(no training) for the tests of its figures and its results.md."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from pyodl.data.watch import EXERCISES, load_watch
from pyodl.experiments import personalize as pers

WATCH = list(EXERCISES)


@pytest.fixture(scope="session")
def watch() -> tuple[list, list[str]]:
    recordings, classes, _ = load_watch()
    return recordings, classes


def _confusion(rng: np.random.Generator, n: int, right: int) -> list[list[int]]:
    """A confusion matrix with a dark diagonal (``right`` per class) and light, mid and empty cells off it;
    each condition has its own ``right``, so a panel scaled on its own would differ from the others."""
    m = rng.integers(0, right // 2, size=(n, n)) * (rng.random((n, n)) < 0.4)
    np.fill_diagonal(m, right)
    return m.tolist()


def _personalize_report(classes: list[str] = WATCH, subjects: int = 3, general_model: str = "abc123",
                       adaptive: bool = True, adaptive_skipped: str = "") -> pers.Report:
    rng = np.random.default_rng(0)
    cfg = pers.Config(quantize=("8",))
    n = len(classes)
    results = []
    for s in range(1, subjects + 1):
        conditions = {}
        for k, (c, epochs) in enumerate(zip(pers.CONDITIONS, (0, cfg.epochs, cfg.warmup_epochs + cfg.epochs,
                                                               cfg.no_pretrain_epochs), strict=True)):
            windows = pers.AdaptiveWindows(20, rng.integers(0, n, 50).tolist(), rng.integers(0, 257, 50).tolist(),
                                           rng.integers(0, n, 50).tolist(), rng.integers(0, n, 50).tolist())
            q = pers.QuantizedResult([8] * 4, 0.7, 0.7, 0.98, 9984, "host", windows if adaptive else None)
            losses = list(np.linspace(2.0, 0.3, epochs) + rng.random(epochs) * 0.1)
            conditions[c] = pers.ConditionResult(0.7, 0.7, _confusion(rng, n, 60 + 10 * k), losses, {"8": q})
        results.append(pers.SubjectResult(s, 200, 200, conditions, [0.0] * 3, [1.0] * 3, general_model, False))
    cost = {"cheap_instructions": 3e5, "full_instructions": 5.5e5, "cheap_cycles": 4e5, "full_cycles": 7e5}
    return pers.Report(cfg, "the seglearn watch dataset", classes, results, 60.0, [], cost, adaptive_skipped)


@pytest.fixture
def personalize_report() -> Callable[..., pers.Report]:
    """``(classes, subjects, general_model, adaptive, adaptive_skipped) -> Report``: numbers only, every
    condition's confusion matrix with a dark diagonal, loss curves, 8-bit adaptive windows unless
    ``adaptive=False``; ``general_model=''`` is a model given with --model and used as is."""
    return _personalize_report
