"""CSV and .npz tables: consecutive rows grouped into recordings, malformed tables refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pyodl.data.table import load_table


def test_csv_table_groups_consecutive_rows(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("subject,label,x,y\n1,walk,0,1\n1,walk,2,3\n1,sit,4,5\n2,walk,6,7\n")
    recordings, classes, channels = load_table(path, rate_hz=20)
    assert classes == ["sit", "walk"] and channels == ["x", "y"]
    assert [(r.subject, classes[r.label], r.signal.tolist()) for r in recordings] == [
        (1, "walk", [[0, 1], [2, 3]]), (1, "sit", [[4, 5]]), (2, "walk", [[6, 7]])]


def test_malformed_tables_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("subject,label,x\n1,walk,0\n1,walk\n")
    with pytest.raises(ValueError, match="lines \\[3\\]"):
        load_table(path, 20)
    path.write_text("subject,label,x\n1,walk,nan\n")
    with pytest.raises(ValueError, match="NaN"):
        load_table(path, 20)
    npz = tmp_path / "t.npz"
    np.savez(npz, signal=np.zeros((3, 2)), subject=np.zeros(3))
    with pytest.raises(ValueError, match="missing arrays \\['label'\\]"):
        load_table(npz, 20)
