"""The bundled watch dataset (seglearn): the real recordings, not a stand-in."""

from __future__ import annotations

from pyodl.data.watch import load_watch


def test_watch_dataset_is_the_real_one() -> None:
    recordings, classes, channels = load_watch()
    assert len(recordings) == 140 and len(classes) == 7 and channels[:3] == ["ax", "ay", "az"]
    assert sorted({r.subject for r in recordings}) == list(range(1, 11))
    assert all(r.rate_hz == 50.0 and r.signal.shape[1] == 6 for r in recordings)
