"""A generic table of samples, one row per sample in time order.

CSV: a header naming the columns, ``subject`` (an integer) and ``label`` (a class name or integer)
required, ``recording`` optional (any value; it keeps apart two recordings of the same subject and label
that follow each other), every other column a sensor channel (a number, in any unit). Consecutive rows with
the same subject, label and recording form one recording. NumPy ``.npz``: arrays ``signal`` (n, C),
``subject`` (n,), ``label`` (n,) and optionally ``recording`` (n,).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pyodl.data.recording import Recording


def _recordings(signal: np.ndarray, subject: np.ndarray, label: np.ndarray, rate_hz: float,
                name: str, recording: np.ndarray | None = None) -> tuple[list[Recording], list[str]]:
    if not (len(signal) == len(subject) == len(label)) or signal.ndim != 2:
        raise ValueError(f"{name}: signal (n, C), subject (n,) and label (n,) must have the same n, got "
                         f"{signal.shape}, {subject.shape}, {label.shape}")
    if len(signal) == 0:
        raise ValueError(f"{name}: no samples")
    classes = sorted({str(v) for v in label}, key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v))
    index = {c: i for i, c in enumerate(classes)}
    runs = recording if recording is not None else np.zeros(len(label), dtype=np.int64)
    keys = [(int(s), str(v), str(r)) for s, v, r in zip(subject, label, runs, strict=True)]
    out, start = [], 0
    for i in range(1, len(keys) + 1):
        if i == len(keys) or keys[i] != keys[start]:
            s, v, _ = keys[start]
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
            runs = np.asarray(d["recording"]) if "recording" in d.files else None
            recordings, classes = _recordings(signal, np.asarray(d["subject"]), np.asarray(d["label"]), rate_hz,
                                              path.name, runs)
            return recordings, classes, [f"c{i}" for i in range(signal.shape[1] if signal.ndim == 2 else 0)]
    lines = path.read_text().splitlines()
    header = [c.strip() for c in lines[0].split(",")] if lines else []
    lower = [c.lower() for c in header]
    if "subject" not in lower or "label" not in lower or len(header) < 3 or len(set(lower)) != len(lower):
        raise ValueError(f"{path}: the header must name the columns subject, label, optionally recording, and at "
                         f"least one channel, each once; the header found is: {lines[0] if lines else '(empty file)'}")
    col_subject, col_label = lower.index("subject"), lower.index("label")
    col_recording = lower.index("recording") if "recording" in lower else None
    channels = [k for k in range(len(header)) if k not in (col_subject, col_label, col_recording)]
    if not channels:
        raise ValueError(f"{path}: no channel column; the header found is: {lines[0]}")
    signal, subject, label, recording = [], [], [], []
    for number, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != len(header):
            raise ValueError(f"{path}, line {number}: {len(fields)} fields, the header has {len(header)}")
        try:
            subject.append(int(fields[col_subject]))
        except ValueError:
            raise ValueError(f"{path}, line {number}, column subject: {fields[col_subject]!r} is not an integer") \
                from None
        row = []
        for k in channels:
            try:
                value = float(fields[k])
            except ValueError:
                raise ValueError(f"{path}, line {number}, column {header[k]}: {fields[k]!r} is not a number") \
                    from None
            if not np.isfinite(value):
                raise ValueError(f"{path}, line {number}, column {header[k]}: {fields[k]!r} (NaN or infinity)")
            row.append(value)
        signal.append(row)
        label.append(fields[col_label])
        recording.append(fields[col_recording] if col_recording is not None else "")
    if not signal:
        raise ValueError(f"{path}: a header and no row")
    recordings, classes = _recordings(np.array(signal), np.array(subject), np.array(label), rate_hz, path.name,
                                      np.array(recording))
    return recordings, classes, [header[k] for k in channels]
