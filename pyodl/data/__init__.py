"""Sensor datasets as recordings, and their windows: loading, resampling to 20 Hz, windowing, splits."""

from pyodl.data.recording import Recording
from pyodl.data.windows import Normalizer, Windows, personalization_split, windows_of

__all__ = ["Normalizer", "Recording", "Windows", "personalization_split", "windows_of"]
