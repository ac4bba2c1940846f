"""WISDM v1.1's real raw format, with its malformed lines reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pyodl.data.wisdm import ACTIVITIES, load_wisdm

WISDM_SAMPLE = """33,Jogging,49105962326000,-0.6946377,12.680544,0.50395286;
33,Jogging,49106062271000,5.012288,11.264028,0.95342433;33,Jogging,49106112167000,4.903325,10.882658,-0.08172209;

33,Jogging,49106222305000,-0.61291564,18.496431,3.0237172;
33,Jogging,49106332290000,-1.1849703,12.108489,7.205164;
33,Walking,49106442306000,1.3756552,-2.4925237,-6.510526;
33,Walking,49106542312000,-0.61291564,10.56939,;
abc,Walking,1,2,3,4;
33,Flying,1,2,3,4;
33,Walking,49106652389000,-0.50395286,13.947236,7.0553403,
33,Walking,49106762313000,,,;
"""


def test_wisdm_parses_the_real_format_and_reports_malformed_lines(tmp_path: Path) -> None:
    path = tmp_path / "WISDM_ar_v1.1_raw.txt"
    path.write_text(WISDM_SAMPLE)
    recordings, classes, report = load_wisdm(path)
    assert classes == ACTIVITIES
    # Two records share line 2; line 3 is empty; the trailing-comma record on line 11 is valid.
    assert report.records == 7
    assert [n for n, _ in report.skipped] == [7, 8, 9, 11]
    assert "line 8: user 'abc' is not a number" in report.summary()
    runs = [(r.subject, classes[r.label], len(r.signal)) for r in recordings]
    assert runs == [(33, "Jogging", 5), (33, "Walking", 2)]
    np.testing.assert_allclose(recordings[0].signal[1], [5.012288, 11.264028, 0.95342433], rtol=1e-6)


def test_wisdm_without_valid_records_or_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("hello world\n1,2,3\n")
    with pytest.raises(ValueError, match="no valid WISDM record"):
        load_wisdm(path)
    with pytest.raises(FileNotFoundError, match="wisdm"):
        load_wisdm(tmp_path / "missing.txt")
