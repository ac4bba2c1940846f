"""Resampling, windowing and the personalization split (no sample on both sides)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pyodl.data import Normalizer, Recording, personalization_split, windows_of
from pyodl.data.windows import resample


def _ramp(n: int, subject: int = 1, label: int = 0, rate: float = 20.0) -> Recording:
    t = np.arange(n, dtype=np.float32)
    return Recording(subject, label, np.stack([t, -t], axis=1), rate, "ramp")


def test_resample_50_to_20_hz_keeps_duration_and_a_slow_signal() -> None:
    t = np.arange(500) / 50.0
    sig = np.sin(2 * np.pi * 0.5 * t)[:, None]
    out = resample(sig, 50.0)
    assert out.shape == (200, 1)
    np.testing.assert_allclose(out[20:-20, 0], np.sin(2 * np.pi * 0.5 * np.arange(200) / 20.0)[20:-20], atol=0.02)


def test_windows_have_the_stride_and_labels() -> None:
    w = windows_of([_ramp(100, subject=3, label=2)], length=40, stride=20)
    assert w.x.shape == (4, 40, 2) and set(w.y) == {2} and set(w.subject) == {3}
    assert [int(x[0, 0]) for x in w.x] == [0, 20, 40, 60]


def test_split_never_shares_a_sample() -> None:
    """Values of the ramp are sample indices: every personalization window ends before every test window
    of the same recording starts."""
    first, rest = personalization_split([_ramp(203)], length=40, stride=20, fraction=0.5)
    assert len(first) > 0 and len(rest) > 0
    assert first.x[:, :, 0].max() < rest.x[:, :, 0].min()
    assert first.x[:, :, 0].max() < 101 <= rest.x[:, :, 0].min()


def test_the_gap_leaves_out_its_seconds_after_the_cut() -> None:
    """At 20 Hz a 2 s gap leaves out samples 101..140 of a 203-sample ramp cut at 101: the test part starts at
    141 (without the gap, at 101)."""
    first, rest = personalization_split([_ramp(203)], length=40, stride=20, fraction=0.5, gap_seconds=2.0)
    assert first.x[:, :, 0].max() == 99 and rest.x[:, :, 0].min() == 141
    assert len(rest) == 2  # the 62 samples after the gap hold windows at 141 and 161
    _, none = personalization_split([_ramp(203)], 40, 20, 0.5, gap_seconds=4.0)
    assert len(none) == 0  # the 22 samples left hold no window
    with pytest.raises(ValueError, match="gap"):
        personalization_split([_ramp(203)], 40, 20, 0.5, gap_seconds=float("nan"))


def test_split_rejects_a_bad_fraction() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        personalization_split([_ramp(100)], 40, 20, fraction=1.0)


def test_normalizer_round_trips(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(50, 40, 3)).astype(np.float32)
    norm = Normalizer.fit(x)
    z = norm(x)
    np.testing.assert_allclose(z.reshape(-1, 3).mean(axis=0), 0, atol=1e-5)
    norm.save(tmp_path / "n.json")
    again = Normalizer.load(tmp_path / "n.json")
    assert np.array_equal(again(x), z)


def test_the_recording_split_personalizes_every_activity_on_the_same_wrist() -> None:
    """In dataset order the watch set's subject 2 did four exercises with one arm first and three with the other:
    the split then let the wrist stand for the activity, and the test windows (other wrist) scored F1 0.000."""
    from pyodl.data.windows import recording_split

    def rec(label: int, side: int) -> Recording:
        return Recording(2, label, np.full((60, 1), 10 * side + label, np.float32), 20.0, side=side)

    recordings = [rec(0, 1), rec(0, 0), rec(1, 0), rec(1, 1), rec(2, 1), rec(2, 0)]
    pers, test, untested = recording_split(recordings, 20, 20)
    assert untested == []
    assert sorted({int(v) for v in pers.x.ravel()}) == [0, 1, 2]  # side 0 personalizes every activity
    assert sorted({int(v) for v in test.x.ravel()}) == [10, 11, 12]
    # Without the wrist (a CSV's recordings), dataset order decides, as before.
    plain = [Recording(2, r.label, r.signal, 20.0) for r in recordings]
    pers, _, _ = recording_split(plain, 20, 20)
    assert sorted({int(v) for v in pers.x.ravel()}) == [1, 10, 12]  # the first of each activity
