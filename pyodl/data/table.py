"""A generic table of samples: CSV (``subject,label,c1,...,cN`` with a header) or NumPy ``.npz`` (arrays
``signal`` (n, C), ``subject`` (n,), ``label`` (n,)). Consecutive rows of one subject and label form a
recording; labels may be names or integers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pyodl.data.recording import Recording


def _recordings(signal: np.ndarray, subject: np.ndarray, label: np.ndarray, rate_hz: float,
                name: str) -> tuple[list[Recording], list[str]]:
    if not (len(signal) == len(subject) == len(label)) or signal.ndim != 2:
        raise ValueError(f"{name}: signal (n, C), subject (n,) and label (n,) must have the same n, got "
                         f"{signal.shape}, {subject.shape}, {label.shape}")
    if len(signal) == 0:
        raise ValueError(f"{name}: no samples")
    classes = sorted({str(v) for v in label}, key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v))
    index = {c: i for i, c in enumerate(classes)}
    keys = [(int(s), str(v)) for s, v in zip(subject, label, strict=True)]
    out, start = [], 0
    for i in range(1, len(keys) + 1):
        if i == len(keys) or keys[i] != keys[start]:
            s, v = keys[start]
            out.append(Recording(s, index[v], signal[start:i].astype(np.float32), rate_hz,
                                 f"{name} rows {start + 1}-{i}"))
            start = i
    return out, classes


def load_table(path: Path, rate_hz: float) -> tuple[list[Recording], list[str], list[str]]:
    """Recordings, class names and channel names (a CSV's header; ``c0``, ``c1``, ... for .npz)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix == ".npz":
        with np.load(path) as d:
            missing = {"signal", "subject", "label"} - set(d.files)
            if missing:
                raise ValueError(f"{path}: missing arrays {sorted(missing)}")
            signal = np.asarray(d["signal"], np.float64)
            recordings, classes = _recordings(signal, np.asarray(d["subject"]), np.asarray(d["label"]), rate_hz,
                                              path.name)
            return recordings, classes, [f"c{i}" for i in range(signal.shape[1] if signal.ndim == 2 else 0)]
    rows = [line.strip().split(",") for line in path.read_text().splitlines() if line.strip()]
    if len(rows) < 2 or [c.strip().lower() for c in rows[0][:2]] != ["subject", "label"] or len(rows[0]) < 3:
        raise ValueError(f"{path}: expected a header `subject,label,<channel>...` and at least one row")
    width = len(rows[0])
    bad = [n for n, r in enumerate(rows[1:], 2) if len(r) != width]
    if bad:
        raise ValueError(f"{path}: lines {bad[:5]} do not have {width} fields")
    try:
        signal = np.array([[float(v) for v in r[2:]] for r in rows[1:]])
        subject = np.array([int(r[0]) for r in rows[1:]])
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    recordings, classes = _recordings(signal, subject, np.array([r[1].strip() for r in rows[1:]]), rate_hz,
                                      path.name)
    return recordings, classes, [c.strip() for c in rows[0][2:]]
