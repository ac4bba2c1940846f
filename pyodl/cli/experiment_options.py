"""What the experiment commands (personalize, stream, federate) share: where the recordings come from,
which channels and subjects, progress bars, and the results folder."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from pyodl.cli.shared import EXIT_OK, WORKERS, positive
from pyodl.cli.signals import Signals
from pyodl.model.architecture import ModelError


def add_recordings_args(p: argparse.ArgumentParser) -> None:
    """Where an experiment's recordings come from."""
    p.add_argument("--dataset", default="watch",
                   help="watch (bundled, default), wisdm:PATH (WISDM v1.1 raw file) or table:PATH (CSV/.npz)")
    p.add_argument("--rate", type=positive(100_000.0), default=None, help="sampling rate in Hz of a table dataset")


def add_subject_run_args(p: argparse.ArgumentParser) -> None:
    """Where the general models are cached, and where the held-out subjects run."""
    p.add_argument("--cache", default="~/.cache/pyodl/pretrained", help="where pretrained general models are kept")
    p.add_argument("--no-cache", action="store_true", help="always pretrain again")
    p.add_argument("--workers", type=WORKERS, default=None, metavar="N",
                   help="run subjects in N local processes at once (default: one per core, up to one per subject; "
                        "1 with --trainer serial or renode); the results are the same as one after the other")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="run subjects as tasks on the Ray cluster at ADDRESS (what `ray start --head` printed, or "
                        "auto) instead of local processes; its nodes need pyodl and its fleet extra")


def subject_workers(requested: int | None, trainer: str, subjects: int) -> int:
    """--workers, or by default every core, but no more processes than subjects; one board (serial) or one
    Renode (a heavy program of its own) runs one subject at a time."""
    if requested is not None:
        return requested
    if trainer in ("serial", "renode"):
        return 1
    return max(1, min(os.cpu_count() or 1, subjects))


def load_dataset(spec: str, rate: float | None) -> tuple[list, list[str], str, list[str]]:
    """``watch`` (bundled), ``wisdm:PATH`` or ``table:PATH`` (CSV or .npz, with --rate): recordings, class
    names, the dataset's name and its channel names."""
    if spec == "watch":
        from pyodl.data.watch import load_watch

        recordings, classes, channel_names = load_watch()
        return recordings, classes, "the seglearn watch dataset", channel_names
    kind, _, path = spec.partition(":")
    if kind == "wisdm" and path:
        from pyodl.data.wisdm import load_wisdm

        recordings, classes, report = load_wisdm(Path(path))
        print(f"WISDM: {report.summary()}", file=sys.stderr)
        return recordings, classes, f"WISDM ({Path(path).name})", ["x", "y", "z"]
    if kind == "table" and path:
        from pyodl.data.table import load_table

        if rate is None:
            raise ModelError("a table dataset needs --rate (its sampling rate in Hz)")
        recordings, classes, channel_names = load_table(Path(path), rate)
        return recordings, classes, Path(path).name, channel_names
    raise ModelError(f"--dataset {spec!r}: use watch, wisdm:PATH or table:PATH")


def pick_channels(spec: str | None, names: list[str], count: int, default_why: str,
              setup: list[str]) -> tuple[int, ...]:
    """``--channels`` as indices or names of the dataset's channels; None: the first ``count``."""
    if spec is None:
        if count > len(names):
            raise ModelError(f"the model takes {count} channels and the dataset has {len(names)} "
                             f"({', '.join(names)})")
        chosen = tuple(range(count))
        setup.append(f"channels: {', '.join(names[i] for i in chosen)} ({default_why}; --channels to choose)")
        return chosen
    picked = []
    for item in (part.strip() for part in spec.split(",")):
        if item.isdigit() and int(item) < len(names):
            picked.append(int(item))
        elif item in names:
            picked.append(names.index(item))
        else:
            raise ModelError(f"--channels {spec!r}: {item!r} is neither a channel index below {len(names)} nor "
                             f"one of {', '.join(names)}")
    if len(set(picked)) != len(picked):
        raise ModelError(f"--channels {spec!r} names a channel twice")
    setup.append(f"channels: {', '.join(names[i] for i in picked)}")
    return tuple(picked)


@contextlib.contextmanager
def progress_bars(unit: str, signals: Signals) -> Iterator[Callable[[str, int, int], None]]:
    """A progress callback drawing one bar per task on stderr; an interrupted run's bars are cleared on the way
    out, not after the message that says so. It raises again a signal that TensorFlow swallowed."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def progress(what: str, done: int, total: int) -> None:
        signals.raise_again()
        bar = bars.get(what)
        if bar is None:
            kind = "step" if "build" in what else "epoch" if "pretrain" in what else \
                "subject" if what == "subjects" else unit
            bar = bars[what] = tqdm(total=total, desc=what, unit=kind, leave=False, file=sys.stderr)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            del bars[what]

    try:
        yield progress
    finally:
        for bar in bars.values():
            bar.close()


class Report(Protocol):
    def markdown(self, command: str) -> str: ...

    def to_json(self) -> dict[str, object]: ...


def write_results(args: argparse.Namespace, report: Report, plot: Callable[[Any, Path], None], plots: str) -> int:
    """An experiment's results.md, results.json and plots into --out; the table on stdout."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = args.command_line
    (out / "results.md").write_text(report.markdown(command))
    (out / "results.json").write_text(json.dumps(report.to_json(), indent=2))
    plot(report, out)
    print(report.markdown(command))
    print(f"wrote {out}/results.md, results.json, {plots}", file=sys.stderr)
    return EXIT_OK


def parse_subjects(text: str | None) -> list[int] | None:
    try:
        return [int(s) for s in text.split(",")] if text else None
    except ValueError:
        raise ModelError(f"--subjects takes comma-separated subject numbers, e.g. 1,2,3; got {text!r}") from None
