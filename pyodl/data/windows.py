"""From recordings to labelled windows: resample, cut each recording into a personalization part and a test
part, window each part on its own (so no window straddles the cut), normalise with the statistics of the
data the general model was trained on."""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from pyodl.data.recording import Recording

TARGET_RATE_HZ = 20.0


@dataclass(frozen=True)
class Windows:
    x: np.ndarray  # (n, T, C) float32
    y: np.ndarray  # (n,) int64
    subject: np.ndarray  # (n,) int64

    def __len__(self) -> int:
        return len(self.y)

    def select(self, mask: np.ndarray) -> Windows:
        return Windows(self.x[mask], self.y[mask], self.subject[mask])

    @staticmethod
    def concat(parts: list[Windows], length: int, channels: int) -> Windows:
        if not parts:
            return Windows(np.zeros((0, length, channels), np.float32), np.zeros(0, np.int64),
                           np.zeros(0, np.int64))
        return Windows(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]),
                       np.concatenate([p.subject for p in parts]))


def resample(signal: np.ndarray, rate_hz: float, target_hz: float = TARGET_RATE_HZ) -> np.ndarray:
    """Polyphase resampling (anti-aliased) to ``target_hz``."""
    if rate_hz == target_hz:
        return signal.astype(np.float32)
    ratio = Fraction(target_hz / rate_hz).limit_denominator(1000)
    return resample_poly(signal, ratio.numerator, ratio.denominator, axis=0).astype(np.float32)


def _frames(signal: np.ndarray, length: int, stride: int) -> np.ndarray:
    n = (len(signal) - length) // stride + 1 if len(signal) >= length else 0
    if n == 0:
        return np.zeros((0, length, signal.shape[1]), np.float32)
    idx = np.arange(length)[None, :] + stride * np.arange(n)[:, None]
    return signal[idx]


def windows_of(recordings: list[Recording], length: int, stride: int, channels: list[int] | None = None) -> Windows:
    """Every window of every recording (resampled to 20 Hz), ``stride`` samples apart."""
    if length < 1 or stride < 1:
        raise ValueError(f"window length and stride must be >= 1, got {length} and {stride}")
    parts = []
    for rec in recordings:
        sig = resample(rec.signal, rec.rate_hz)
        if channels is not None:
            sig = sig[:, channels]
        frames = _frames(sig, length, stride)
        parts.append(Windows(frames, np.full(len(frames), rec.label, np.int64),
                             np.full(len(frames), rec.subject, np.int64)))
    n_ch = len(channels) if channels is not None else (recordings[0].signal.shape[1] if recordings else 0)
    return Windows.concat(parts, length, n_ch)


def personalization_split(recordings: list[Recording], length: int, stride: int, fraction: float = 0.5,
                          channels: list[int] | None = None, gap_seconds: float = 0.0) -> tuple[Windows, Windows]:
    """Each recording's first ``fraction`` (in time) gives the personalization windows, the rest after a gap of
    ``gap_seconds`` the test windows. The two parts are windowed separately, so no sample is in both; the gap
    keeps the test windows off the seconds right after the last trained ones, which look most like them."""
    if not 0 < fraction < 1:
        raise ValueError(f"the personalization fraction must be between 0 and 1, got {fraction}")
    if not (gap_seconds >= 0 and np.isfinite(gap_seconds)):
        raise ValueError(f"the gap must be a finite number of seconds >= 0, got {gap_seconds}")
    first, rest = [], []
    for rec in recordings:
        cut = int(len(rec.signal) * fraction)
        resume = cut + round(gap_seconds * rec.rate_hz)
        if cut > 0:
            first.append(Recording(rec.subject, rec.label, rec.signal[:cut], rec.rate_hz, rec.name))
        if resume < len(rec.signal):
            rest.append(Recording(rec.subject, rec.label, rec.signal[resume:], rec.rate_hz, rec.name))
    return windows_of(first, length, stride, channels), windows_of(rest, length, stride, channels)


SPLITS = ("time", "recording")


def recording_split(recordings: list[Recording], length: int, stride: int, fraction: float = 0.5,
                    channels: list[int] | None = None) -> tuple[Windows, Windows, list[int]]:
    """Whole recordings: of each label's recordings, in dataset order, the first ``fraction`` (at least one)
    personalize and the others test, so no test window comes from a bout the model trained on (e.g. one
    arm side of the watch set each). Returns the labels that had a single recording and so no test part."""
    if not 0 < fraction < 1:
        raise ValueError(f"the personalization fraction must be between 0 and 1, got {fraction}")
    first, rest, untested = [], [], []
    for label in sorted({r.label for r in recordings}):
        # Where the data knows the wrist, every activity personalizes on the same one first: in dataset order the
        # watch set's subject 2 has PEN, FEL, ER and TRAP on one arm first and the others on the other, so the
        # wrist would stand in for the activity and the test windows of the other wrist would defeat it.
        mine = sorted((r for r in recordings if r.label == label), key=lambda r: -1 if r.side is None else r.side)
        cut = max(1, round(len(mine) * fraction))
        first += mine[:cut]
        rest += mine[cut:]
        if cut == len(mine):
            untested.append(label)
    return windows_of(first, length, stride, channels), windows_of(rest, length, stride, channels), untested


def subject_split(recordings: list[Recording], length: int, stride: int, fraction: float, channels: list[int],
                  split: str, gap_seconds: float = 0.0) -> tuple[Windows, Windows, list[int]]:
    """One subject's personalization and test windows by ``split`` (one of SPLITS), and the labels left
    without a test recording (``recording`` only). ``gap_seconds``: the time split's gap after the cut."""
    if split == "time":
        return (*personalization_split(recordings, length, stride, fraction, channels, gap_seconds), [])
    return recording_split(recordings, length, stride, fraction, channels)


@dataclass(frozen=True)
class Normalizer:
    """Per-channel standardisation; computed on the general model's training windows and stored with it."""

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        # A NaN here turns every window fed to the model into NaN: refused where it is made or read.
        if not (np.isfinite(self.mean).all() and np.isfinite(self.std).all() and (self.std > 0).all()):
            raise ValueError(f"a normalisation needs finite means and positive finite deviations, got mean "
                             f"{self.mean.tolist()} and std {self.std.tolist()}")

    @staticmethod
    def fit(x: np.ndarray) -> Normalizer:
        if x.shape[0] == 0:
            raise ValueError("no window to fit a normalisation on")
        flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
        std = flat.std(axis=0)
        return Normalizer(flat.mean(axis=0).astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"mean": self.mean.tolist(), "std": self.std.tolist()}))

    @staticmethod
    def load(path: Path) -> Normalizer:
        d = json.loads(path.read_text())
        try:
            return Normalizer(np.asarray(d["mean"], np.float32), np.asarray(d["std"], np.float32))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
