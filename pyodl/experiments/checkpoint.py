"""An experiment's results kept subject by subject as each finishes, so that an interrupted run loses only
the subjects in flight, and ``--resume`` takes up the rest.

Each subject's result is one JSON file in the folder, written aside and renamed (never half-written); the
folder's ``run.json`` holds the identity of the run that wrote them (settings, data and general model, as
the experiment defines it), and a resumed run takes up only results of the same identity.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

RUN_FILE = "run.json"


class Checkpoint:
    def __init__(self, folder: Path, resume: bool) -> None:
        self.folder = folder
        self.resume = resume
        self._identity: str | None = None
        self._fresh = False  # the earlier run's files are gone (at the first save of a run not resumed)

    def start(self, identity: str, describe: str) -> dict[int, dict[str, Any]]:
        """The saved results this run takes up, by subject: none unless resuming. ``describe`` names what
        the identity covers, for the refusal of a folder written by another run."""
        self._identity = identity
        if not self.resume:
            return {}
        run_file = self.folder / RUN_FILE
        if not run_file.is_file():
            raise ValueError(f"--resume: {self.folder} holds no saved subject (no {RUN_FILE}); run without "
                             "--resume")
        saved = json.loads(run_file.read_text())
        if saved.get("identity") != identity:
            raise ValueError(f"--resume: {self.folder} was written by a run with other {describe}; run without "
                             "--resume to start again, or give the same options")
        self._fresh = True  # the folder is this run's already
        return {int(p.stem.removeprefix("subject-")): json.loads(p.read_text())
                for p in sorted(self.folder.glob("subject-*.json"))}

    def save(self, subject: int, result: dict[str, Any]) -> None:
        if self._identity is None:
            raise RuntimeError("Checkpoint.start() first")
        if not self._fresh:  # a new run into a folder of an earlier one: its results are not this run's
            for old in self.folder.glob("subject-*.json"):
                old.unlink()
            self._write(self.folder / RUN_FILE, {"identity": self._identity})
            self._fresh = True
        self._write(self.folder / f"subject-{subject}.json", result)

    @staticmethod
    def _write(path: Path, content: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
        try:
            partial.write_text(json.dumps(content))
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
