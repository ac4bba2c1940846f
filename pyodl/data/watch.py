"""The smartwatch dataset shipped inside the seglearn package: 140 recordings of 10 subjects doing 7
shoulder-physiotherapy exercises, accelerometer (g) and gyroscope at 50 Hz, each exercise once with each arm
(``side``). pyodl's bundled default."""

from __future__ import annotations

import numpy as np

from pyodl.data.recording import Recording

RATE_HZ = 50.0
ACCELEROMETER = [0, 1, 2]
# What the dataset's class abbreviations stand for: seglearn ships the abbreviations only. The names are those
# of the author's SPAR dataset (github.com/dmbee/SPAR-dataset), the same seven exercises of Burns et al. (2018).
EXERCISES = {
    "PEN": "pendulum",
    "ABD": "abduction",
    "FEL": "forward elevation",
    "IR": "internal rotation (resistance band)",
    "ER": "external rotation (resistance band)",
    "TRAP": "lower trapezius row (resistance band)",
    "ROW": "bent-over row (3 lb dumbbell)",
}


def load_watch() -> tuple[list[Recording], list[str], list[str]]:
    """Recordings, class names and channel names."""
    try:
        from seglearn.datasets import load_watch as seglearn_watch
    except ImportError as exc:  # seglearn imports pandas without declaring it
        raise RuntimeError(f"the watch dataset needs the seglearn and pandas packages ({exc}): "
                           "pip install seglearn pandas") from exc
    d = seglearn_watch()
    recordings = [
        Recording(int(s), int(y), np.asarray(x, np.float32), RATE_HZ, f"watch #{i} (subject {int(s)})", int(side))
        for i, (x, y, s, side) in enumerate(zip(d["X"], d["y"], d["subject"], d["side"], strict=True))
    ]
    return recordings, list(d["y_labels"]), list(d["X_labels"])
