"""One continuous recording of one subject doing one activity."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Recording:
    subject: int
    label: int  # index into the dataset's class names
    signal: np.ndarray  # (samples, channels) float32
    rate_hz: float
    name: str = ""  # where it came from, for error messages
    side: int | None = None  # the wrist the sensor was worn on (0 or 1), where the dataset says

    def __post_init__(self) -> None:
        if self.signal.ndim != 2 or self.signal.shape[0] == 0:
            raise ValueError(f"recording {self.name or '?'}: signal must be (samples, channels), got "
                             f"{self.signal.shape}")
        if not np.isfinite(self.signal).all():
            raise ValueError(f"recording {self.name or '?'}: NaN or infinity in the signal")
        if not self.rate_hz > 0:
            raise ValueError(f"recording {self.name or '?'}: sampling rate must be > 0, got {self.rate_hz}")
