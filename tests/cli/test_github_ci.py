"""``pyodl ci``: the caller workflow ``init`` writes into a user's repository, the checks of ``plan``, and a
throw-away user repository (a model, recordings and the caller workflow) linted by actionlint and put through
the reusable workflow's Unicorn job, its run steps executed as a runner executes them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from pyodl.cli.program import main

ROOT = Path(__file__).resolve().parents[2]
REUSABLE = ROOT / ".github" / "workflows" / "odl-ci.yml"
BIN = Path(sys.executable).parent
EXPRESSION = re.compile(r"\$\{\{\s*([\w.-]+)\s*\}\}")


def _actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "actionlint"), *map(str, files)], capture_output=True, text=True, check=False)


def _repository(tmp_path: Path, *files: str) -> Path:
    repo = tmp_path / "user"
    (repo / ".git").mkdir(parents=True)
    for name in files:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_bytes(b"")
    return repo


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_init_writes_the_caller_workflow_and_nothing_else(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    repo = _repository(tmp_path, "models/har.keras", "data/rec.csv")
    monkeypatch.chdir(repo)
    before = _files(repo)
    assert main(["ci", "init", "--data", "data/rec.csv", "--mode", "tl", "--trainable-layers", "3"]) == 0
    assert _files(repo) - before == {".github/workflows/pyodl.yml"} and before <= _files(repo)
    caller = yaml.safe_load((repo / ".github/workflows/pyodl.yml").read_text())
    (job,) = caller["jobs"].values()
    assert job["uses"] == "pyodl/pyodl/.github/workflows/odl-ci.yml@main"
    assert job["with"] == {"pyodl-repository": "pyodl/pyodl", "pyodl-ref": "main", "model": "models/har.keras",
                           "data": "data/rec.csv", "mode": "tl", "trainable": "3",
                           "suites": "golden ram persist int8", "renode-revision": "v1.16.1"}
    # Every input the caller gives is one the reusable workflow declares, and every required one is given.
    declared = yaml.safe_load(REUSABLE.read_text())[True]["workflow_call"]["inputs"]
    assert set(job["with"]) <= set(declared)
    assert {name for name, spec in declared.items() if spec.get("required")} <= set(job["with"])
    assert "wrote .github/workflows/pyodl.yml" in capsys.readouterr().out
    lint = _actionlint(repo / ".github/workflows/pyodl.yml", REUSABLE)
    assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.mark.parametrize(("files", "argv", "message"), [
    ((), ["--model", "m.keras"], "not the root of a git repository"),
    ((".git/x", "a.keras", "b/c.keras"), [], "give --model: the repository has 2 .keras files (a.keras, b/c.keras)"),
    ((".git/x",), [], "give --model: the repository has no .keras file"),
    ((".git/x",), ["--model", "m.keras"], "--model m.keras: no such file"),
    ((".git/x", "../outside.keras"), ["--model", "../outside.keras"], "--model ../outside.keras: not inside"),
    ((".git/x", "my model.keras"), ["--model", "my model.keras"], "rename it without blanks"),
    ((".git/x", "m.h5"), ["--model", "m.h5"], "expected a Keras 3 '.keras' file"),
    ((".git/x", "m.keras", "d.txt"), ["--data", "d.txt"], "--data d.txt: expected a recordings table"),
    ((".git/x", "m.keras"), ["--trainable-layers", "2"], "--trainable-layers applies to --mode tl only"),
    ((".git/x", "m.keras"), ["--repository", "pyodl"], "expected OWNER/NAME"),
    ((".git/x", "m.keras"), ["--ref", "a b"], "expected a branch, tag or commit"),
    ((".git/x", "m.keras", ".github/workflows/pyodl.yml"), [], "exists: give --force to replace it"),
])
def test_init_refuses_what_would_not_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str], files: tuple[str, ...],
                                         argv: list[str], message: str) -> None:
    repo = tmp_path / "user"
    repo.mkdir()
    for name in files:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_bytes(b"")
    monkeypatch.chdir(repo)
    before = _files(tmp_path)
    assert main(["ci", "init", *argv]) == 2
    assert message in capsys.readouterr().err
    assert _files(tmp_path) == before


@pytest.mark.parametrize(("argv", "message"), [
    (["--suites", "golden protocol"], "suites 'golden protocol': choose among golden, ram, persist, int8"),
    (["--mode", "half"], "MODE: must be full or tl, got 'half'"),
    (["--optimizer", "rmsprop"], "OPTIMIZER: unknown optimizer"),
    (["--data", "missing.csv"], "DATA missing.csv: no such file"),
    (["--robot-dir", "nowhere"], "is --robot-dir pyodl's robot folder?"),
])
def test_plan_refuses_bad_inputs_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    (tmp_path / "m.keras").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    assert main(["ci", "plan", "--robot-dir", str(ROOT / "robot"), "--model", "m.keras", *argv]) == 2
    assert message in capsys.readouterr().err


def test_plan_refuses_a_path_with_a_blank(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a b").mkdir()
    (tmp_path / "a b" / "m.keras").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    assert main(["ci", "plan", "--robot-dir", str(ROOT / "robot"), "--model", "a b/m.keras"]) == 2
    assert "a path with a blank cannot pass through renode-test-action's arguments" in capsys.readouterr().err


def _run_job(job: dict, inputs: dict[str, str], workspace: Path, env: dict[str, str]) -> None:
    """Every ``run`` step of ``job`` but the install (pyodl is this checkout, the toolchain this machine's), in
    bash as the runner runs it: ``${{ inputs.* }}`` and ``${{ steps.*.outputs.* }}`` substituted, the step's
    ``env`` set, its outputs read back from ``$GITHUB_OUTPUT``. A failing step fails the test."""
    outputs: dict[str, str] = {}

    def value(expression: str) -> str:
        scope, _, name = expression.partition(".")
        if scope == "inputs":
            return inputs[name]
        step, _, output = name.partition(".outputs.")
        return outputs[f"{step}.{output}"]

    for step in job["steps"]:
        if "run" not in step or step.get("id") == "install":
            continue
        github_output = workspace / ".github_output"
        github_output.write_text("")
        step_env = env | {k: EXPRESSION.sub(lambda m: value(m[1]), str(v)) for k, v in step.get("env", {}).items()}
        script = EXPRESSION.sub(lambda m: value(m[1]), step["run"])
        done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=workspace, check=False,
                              env=step_env | {"GITHUB_OUTPUT": str(github_output)}, capture_output=True, text=True)
        assert done.returncode == 0, f"step {step['name']!r}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        for line in github_output.read_text().splitlines():
            name, _, text = line.partition("=")
            outputs[f"{step.get('id')}.{name}"] = text


def test_a_user_repository_runs_the_suites_as_its_workflow_would(tmp_path: Path, user_models: dict[str, Path],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _repository(tmp_path)
    (repo / "models").mkdir()
    (repo / "models" / "u.keras").write_bytes(user_models["fits"].read_bytes())
    rng = np.random.default_rng(0)
    rows = ["subject,label,ax,ay,az,gx,gy,gz"] + [
        f"1,{label}," + ",".join(f"{v:.4f}" for v in rng.standard_normal(6) + k)
        for k, label in enumerate(("walk", "run", "sit", "stand")) for _ in range(200)]
    (repo / "rec.csv").write_text("\n".join(rows) + "\n")
    monkeypatch.chdir(repo)
    assert main(["ci", "init", "--model", "models/u.keras", "--data", "rec.csv"]) == 0
    caller = repo / ".github" / "workflows" / "pyodl.yml"
    lint = _actionlint(caller, REUSABLE)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    # The job as GitHub runs it: the caller's `with:` over the inputs' defaults, the workflow's env, this pyodl
    # where the job checks it out (.pyodl).
    (job_with,) = (job["with"] for job in yaml.safe_load(caller.read_text())["jobs"].values())
    workflow = yaml.safe_load(REUSABLE.read_text())
    declared = workflow[True]["workflow_call"]["inputs"]
    inputs = {name: str(spec.get("default", "")) for name, spec in declared.items()} | {
        k: str(v) for k, v in job_with.items()}
    (repo / ".pyodl").symlink_to(ROOT)
    env = dict(os.environ) | {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    env |= {k: EXPRESSION.sub(lambda m: inputs[m[1].removeprefix("inputs.")], v) for k, v in workflow["env"].items()}
    _run_job(workflow["jobs"]["unicorn"], inputs, repo, env)

    results = repo / "odl-results"
    assert "verdict: fits the STM32L496" in (results / "estimate.txt").read_text()
    assert (results / "estimate.json").stat().st_size > 0
    from robot.api import ExecutionResult

    result = ExecutionResult(str(results / "robot-unicorn" / "output.xml"))
    tests = {t.longname: t.status for t in result.suite.all_tests}
    assert {name.split(".")[1] for name in tests} == {"Golden", "Ram", "Persist", "Int8"}
    assert set(tests.values()) == {"PASS"} | ({"SKIP"} if "SKIP" in tests.values() else set())
    # The user's rows, on the user's windows (int8.robot's personalization says where they came from).
    assert "Golden & Ram & Persist & Int8.Golden.Your Model Trains Like TensorFlow" in tests
    assert "Golden & Ram & Persist & Int8.Ram.Your Model Fits And Trains" in tests
    assert "test windows (DATA)" in (results / "robot-unicorn" / "output.xml").read_text()
    assert [name for name, status in tests.items() if status == "SKIP"] == [
        "Golden & Ram & Persist & Int8.Persist.The Emulation Saves And Loads With Its Flash Slots"]


def test_readmes_caller_yaml_is_what_init_writes() -> None:
    from pyodl.cli.github_ci import REF, REPOSITORY, caller_workflow

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Use pyodl in your repository's CI"):]
    shown = section[section.index("```yaml\n") + len("```yaml\n"):section.index("```\n", section.index("```yaml"))]
    assert shown in caller_workflow("models/har.keras", None, "full", None, REPOSITORY, REF)


def test_readmes_hardware_in_the_loop_job_passes_actionlint(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Hardware in the loop"):]
    job = section[section.index("```yaml\n") + len("```yaml\n"):section.index("```\n", section.index("```yaml"))]
    assert "--variable BACKEND:serial" in job and "pyodl flash models/har.keras --dataset-windows 32" in job
    (tmp_path / ".git").mkdir()  # actionlint finds the project, and its config, by the repository
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "hil.yml").write_text(job)
    (tmp_path / ".github" / "actionlint.yaml").write_text("self-hosted-runner:\n  labels:\n    - nucleo-l496zg\n")
    lint = subprocess.run([str(BIN / "actionlint")], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
