"""Subjects in worker processes (``--workers N``): the same report as one after the other, in the order asked
for; a failing subject fails the run with its own error."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest

from pyodl.experiments import personalize as pers
from pyodl.experiments import stream as st
from pyodl.experiments.workers import run_each


def _silent(what: str, done: int, total: int) -> None:
    pass


def test_workers_keep_the_jobs_order_and_raise_the_first_failure() -> None:
    # str.format pickles and takes the keywords, progress included; "{x:d}" fails on a string.
    seen: list[tuple[str, int, int]] = []
    jobs = [{"x": 16}, {"x": 9}, {"x": 1}]
    assert run_each("{x}".format, jobs, 2, lambda *a: seen.append(a)) == ["16", "9", "1"]
    assert seen[0] == ("subjects", 0, 3) and seen[-1] == ("subjects", 3, 3)
    assert run_each("{x} {progress.__name__}".format, jobs, 2, _silent) == ["16 quiet", "9 quiet", "1 quiet"]
    assert run_each("{x} {progress.__name__}".format, jobs, 1, _silent) == ["16 _silent", "9 _silent", "1 _silent"]
    with pytest.raises(ValueError, match="Unknown format code 'd'"):
        run_each("{x:d}".format, [{"x": 4}, {"x": "a"}, {"x": 9}], 2, _silent)
    with pytest.raises(ValueError, match="workers must be >= 1"):
        run_each("{x}".format, jobs, 0, _silent)


def test_personalize_with_two_workers_gives_the_sequential_table(watch: tuple[list, list[str]],
                                                                  tmp_path: Path) -> None:
    recordings, classes = watch
    # No int8 copies: their results come from the same firmware commands, and the quantization tests prove them.
    cfg = pers.Config(input_len=20, stride=10, epochs=2, warmup_epochs=1, pretrain_epochs=1, no_pretrain_epochs=2,
                      seed=4, trainer="board", quantize=())
    # The workers pretrain (in parallel, into the cache); the sequential run then finds those general models,
    # so the comparison covers everything after pretraining: the board's training and the evaluation.
    parallel = pers.run(recordings, classes, [4, 3], cfg, "watch", tmp_path, _silent, workers=2)
    sequential = pers.run(recordings, classes, [4, 3], cfg, "watch", tmp_path, _silent)
    assert [s.subject for s in parallel.subjects] == [4, 3]
    assert [s.general_model_cached for s in sequential.subjects] == [True, True]
    for p, s in zip(parallel.subjects, sequential.subjects, strict=True):
        assert {**asdict(p), "general_model_cached": None} == {**asdict(s), "general_model_cached": None}
    def table(report: pers.Report) -> list[str]:
        return [line for line in report.markdown("cmd").splitlines() if line.startswith("|")]

    assert table(parallel) == table(sequential)


def test_stream_with_two_workers_gives_the_sequential_runs(watch: tuple[list, list[str]], tmp_path: Path) -> None:
    recordings, classes = watch
    cfg = st.Config(input_len=20, stride=10, pretrain_epochs=1, trainer="board", max_windows=30, replay=16, batch=4)
    sequential = st.run(recordings, classes, [2, 3], cfg, "watch", tmp_path, _silent)
    parallel = st.run(recordings, classes, [2, 3], cfg, "watch", tmp_path, _silent, workers=2)
    assert [asdict(s) for s in parallel.subjects] == [asdict(s) for s in sequential.subjects]


@pytest.fixture()
def ray_cluster() -> Iterator[str]:
    """A one-node Ray cluster started as a user starts one (`ray start --head`), stopped afterwards."""
    import os
    import shutil
    import signal
    import socket
    import subprocess
    import sys
    import tempfile

    if not os.environ.get("CI"):
        pytest.importorskip("ray", reason="the fleet extra: pip install -e '.[fleet]'")
    ray = shutil.which("ray", path=str(Path(sys.executable).parent))
    assert ray is not None, "the fleet extra installs the `ray` command beside python"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0"}
    # Its own temporary folder, so that another test's local Ray (Flower's) does not find this cluster, nor this
    # one it; a short one: Ray's socket paths live in it, and AF_UNIX paths stop at 107 bytes.
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    # --block: the head runs in this process group's child, and stopping it stops this cluster only (`ray stop`
    # would stop every Ray on the machine, the other tests' included).
    head = subprocess.Popen([ray, "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
                             "--include-dashboard=false", f"--temp-dir={temp}", "--disable-usage-stats"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        shutil.rmtree(temp, ignore_errors=True)


def test_a_ray_cluster_runs_the_jobs_in_order_and_raises_the_first_failure(ray_cluster: str) -> None:
    seen: list[tuple[str, int, int]] = []
    assert run_each("{x} {progress.__name__}".format, [{"x": 3}, {"x": 1}], 1, lambda *a: seen.append(a),
                    ray_address=ray_cluster) == ["3 quiet", "1 quiet"]
    assert seen[-1] == ("subjects", 2, 2)
    with pytest.raises(ValueError, match="Unknown format code 'd'"):
        run_each("{x:d}".format, [{"x": 4}, {"x": "a"}], 1, _silent, ray_address=ray_cluster)


def test_personalize_on_a_ray_cluster_gives_the_sequential_table(watch: tuple[list, list[str]], tmp_path: Path,
                                                                 ray_cluster: str) -> None:
    recordings, classes = watch
    cfg = pers.Config(input_len=20, stride=10, epochs=2, warmup_epochs=1, pretrain_epochs=1, no_pretrain_epochs=2,
                      seed=5, trainer="board", quantize=())
    on_ray = pers.run(recordings, classes, [3, 4], cfg, "watch", tmp_path, _silent, ray_address=ray_cluster)
    sequential = pers.run(recordings, classes, [3, 4], cfg, "watch", tmp_path, _silent)
    assert [s.general_model_cached for s in sequential.subjects] == [True, True]  # the cluster pretrained them
    for r, s in zip(on_ray.subjects, sequential.subjects, strict=True):
        assert {**asdict(r), "general_model_cached": None} == {**asdict(s), "general_model_cached": None}


_STOPPED_PARENT = '''
import os, signal, sys, time
from pathlib import Path
from pyodl.experiments.workers import run_each

def job(out, progress):
    Path(out, f"{os.getpid()}.started").write_text("")
    try:
        time.sleep(120)
    finally:
        Path(out, f"{os.getpid()}.cleaned").write_text("")

if __name__ == "__main__":
    def stop(signum, frame):
        raise SystemExit(143)  # as the CLI does: SIGTERM becomes an exception in the main thread
    signal.signal(signal.SIGTERM, stop)
    run_each(job, [{"out": sys.argv[1]}] * 2, 2, lambda *a: None)
'''


def test_a_parent_stopped_by_sigterm_stops_its_workers(tmp_path: Path) -> None:
    """SIGTERM to the parent alone (a `kill PID`, a CI timeout), not the process group: its running workers
    get SIGINT and leave through their own cleanup instead of running on as orphans."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text(_STOPPED_PARENT)
    out = tmp_path / "marks"
    out.mkdir()
    parent = subprocess.Popen([sys.executable, str(script), str(out)], start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while len(list(out.glob("*.started"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = [int(p.stem) for p in out.glob("*.started")]
        assert len(workers) == 2
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=30) != 0
        assert sorted(int(p.stem) for p in out.glob("*.cleaned")) == sorted(workers)
        for pid in workers:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                raise AssertionError(f"worker {pid} outlived its parent")
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
