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


def test_a_recording_column_keeps_adjacent_recordings_apart(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("label,recording,subject,ax\nwalk,left,1,0\nwalk,left,1,1\nwalk,right,1,2\n")
    recordings, classes, channels = load_table(path, rate_hz=20)
    assert classes == ["walk"] and channels == ["ax"]
    assert [r.signal.ravel().tolist() for r in recordings] == [[0, 1], [2]]


@pytest.mark.parametrize(("text", "message"), [
    ("subject,label,x\n1,walk,0\n1,walk\n", r"t.csv, line 3: 2 fields, the header has 3"),
    ("subject,label,x\n1,walk,nan\n", r"line 2, column x: 'nan' \(NaN or infinity\)"),
    ("subject,label,x\n1,walk,0\n1,walk,0.5g\n", r"line 3, column x: '0.5g' is not a number"),
    ("subject,label,x\none,walk,0\n", r"line 2, column subject: 'one' is not an integer"),
    ("user,activity,x\n1,walk,0\n", r"the header found is: user,activity,x"),
    ("subject,label,recording\n1,walk,a\n", r"no channel column"),
])
def test_malformed_tables_say_where(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_table(path, 20)


def test_malformed_npz_is_refused(tmp_path: Path) -> None:
    npz = tmp_path / "t.npz"
    np.savez(npz, signal=np.zeros((3, 2)), subject=np.zeros(3))
    with pytest.raises(ValueError, match="missing arrays \\['label'\\]"):
        load_table(npz, 20)
