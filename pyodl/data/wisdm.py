"""WISDM v1.1 raw accelerometer data (Kwapisz et al., 2010; the seed paper's dataset, 20 Hz).

Each record is ``user,activity,timestamp,x,y,z;``. The real file has malformed records: several on one
line, a missing trailing value (``...,x,y,;``), empty lines, extra commas. Malformed records are skipped
and reported by line number; a file with no valid record, or whose users are not integers, is an error.
Consecutive records of the same user and activity form one recording.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pyodl.data.recording import Recording

RATE_HZ = 20.0
ACTIVITIES = ["Walking", "Jogging", "Upstairs", "Downstairs", "Sitting", "Standing"]


@dataclass
class WisdmReport:
    records: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)

    def summary(self) -> str:
        head = "; ".join(f"line {n}: {why}" for n, why in self.skipped[:5])
        more = f" (and {len(self.skipped) - 5} more)" if len(self.skipped) > 5 else ""
        detail = f": {head}{more}" if head else ""
        return f"{self.records} records read, {len(self.skipped)} malformed skipped{detail}"


def _parse_record(text: str) -> tuple[int, str, float, float, float]:
    fields = [f.strip() for f in text.split(",")]
    if len(fields) == 7 and fields[6] == "":
        fields = fields[:6]  # a stray trailing comma
    if len(fields) != 6:
        raise ValueError(f"{len(fields)} fields, expected 6 (user,activity,timestamp,x,y,z)")
    user, activity = fields[0], fields[1]
    if not user.isdigit():
        raise ValueError(f"user {user!r} is not a number")
    if activity not in ACTIVITIES:
        raise ValueError(f"unknown activity {activity!r}")
    try:
        x, y, z = (float(v) for v in fields[3:6])
    except ValueError as exc:
        raise ValueError(f"acceleration is not a number ({exc})") from exc
    if not all(math.isfinite(v) for v in (x, y, z)):
        raise ValueError("acceleration is not finite")
    return int(user), activity, x, y, z


def load_wisdm(path: Path, min_samples: int = 1) -> tuple[list[Recording], list[str], WisdmReport]:
    """Recordings of ``WISDM_ar_v1.1_raw.txt`` (or any file in its format), the class names and a report of
    what was skipped."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such WISDM file (download WISDM_ar_v1.1_raw.txt from "
                                "https://www.cis.fordham.edu/wisdm/dataset.php)")
    report = WisdmReport()
    runs: list[tuple[int, str, list[tuple[float, float, float]]]] = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            for part in line.strip().split(";"):
                if not part.strip():
                    continue
                try:
                    user, activity, x, y, z = _parse_record(part)
                except ValueError as exc:
                    report.skipped.append((number, str(exc)))
                    continue
                report.records += 1
                if runs and runs[-1][0] == user and runs[-1][1] == activity:
                    runs[-1][2].append((x, y, z))
                else:
                    runs.append((user, activity, [(x, y, z)]))
    if report.records == 0:
        raise ValueError(f"{path}: no valid WISDM record ({report.summary()})")
    recordings = [
        Recording(user, ACTIVITIES.index(activity), np.asarray(samples, np.float32), RATE_HZ,
                  f"{path.name}: user {user} {activity} #{i}")
        for i, (user, activity, samples) in enumerate(runs) if len(samples) >= min_samples
    ]
    return recordings, list(ACTIVITIES), report
