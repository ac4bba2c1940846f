"""``pyodl ci`` (a name apart from the package, ``cli``): pyodl's Robot suites in another repository's CI.

``pyodl ci init`` writes the caller workflow (``.github/workflows/pyodl.yml``) that runs the reusable workflow
``.github/workflows/odl-ci.yml`` of pyodl's repository on the user's model; ``pyodl ci plan`` is what that
workflow runs first: it checks its inputs and prints the Robot variables, the suites and the estimate's
arguments as GitHub step outputs.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from pyodl.cli.shared import EXIT_OK, TRAINABLE_LAYERS
from pyodl.model.architecture import ModelError
from pyodl.robot.suite_model import DATASET_WINDOWS  # the suites' build: the estimate counts the same

# The repository that publishes odl-ci.yml, and the ref a caller pins by default (--repository and --ref for a
# fork or a release tag).
REPOSITORY = "pyodl/pyodl"
REF = "main"
CALLER = Path(".github/workflows/pyodl.yml")
SUITES = ("golden", "ram", "persist", "int8")  # the suites that take a MODEL (robot/README.md)
BACKENDS = ("unicorn", "renode")
_REPOSITORY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+")
_REF = re.compile(r"[A-Za-z0-9_./-]+")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ci", help="run pyodl's Robot suites on your model in your repository's GitHub Actions",
                       description="pyodl's Robot suites (golden, ram, persist, int8) on your model in your "
                                   "repository's CI: `init` writes the caller workflow, `plan` is the reusable "
                                   "workflow's first step.")
    commands = p.add_subparsers(dest="ci_command", required=True)
    init = commands.add_parser(
        "init", help="write .github/workflows/pyodl.yml, which calls pyodl's reusable workflow on your model",
        description="Write .github/workflows/pyodl.yml into the repository in the current folder (and nothing "
                    "else): on every push and pull request it calls pyodl's reusable workflow odl-ci.yml, which "
                    "runs the Robot suites on your model on the Unicorn model of the STM32L496 and under Renode, "
                    "uploads the Robot logs and the estimate, and fails on an overflow or a golden mismatch.")
    init.add_argument("--model", default=None, metavar="M",
                      help="your Keras 3 .keras file, a path inside the repository (default: the repository's only "
                           ".keras file)")
    init.add_argument("--data", default=None, metavar="D",
                      help="a recordings table (.csv or .npz, inside the repository) the suites train on (default: "
                           "seeded random windows)")
    init.add_argument("--mode", choices=("full", "tl"), default="full", help="full (default) or tl")
    init.add_argument("--trainable-layers", type=TRAINABLE_LAYERS, default=None, metavar="N",
                      help="with --mode tl: how many last parameter layers train (default 2)")
    init.add_argument("--repository", default=REPOSITORY,
                      help=f"the GitHub repository of pyodl whose workflow to call (default {REPOSITORY})")
    init.add_argument("--ref", default=REF, help=f"its branch, tag or commit (default {REF})")
    init.add_argument("--force", action="store_true", help="replace an existing .github/workflows/pyodl.yml")
    init.set_defaults(func=run_init)

    plan = commands.add_parser(
        "plan", help="the reusable workflow's first step: check its inputs, print the suites' arguments",
        description="Check the reusable workflow's inputs and print, as GitHub step outputs (name=value lines), "
                    "the Robot variables (`variables`), the suites' files (`tests`) and `pyodl estimate`'s "
                    "arguments (`estimate`). Paths become absolute; one with a blank is refused, since "
                    "renode-test-action splits its arguments on blanks.")
    plan.add_argument("--model", required=True, help="the .keras file")
    plan.add_argument("--data", default="", help="a recordings table (default: none)")
    plan.add_argument("--mode", default="full", help="full (default) or tl")
    plan.add_argument("--trainable-layers", default="", metavar="N", help="with --mode tl: last layers that train")
    plan.add_argument("--optimizer", default="", help="the on-device optimizer (default sgd)")
    plan.add_argument("--rate", default="", help="DATA's sampling rate in Hz (default 20)")
    plan.add_argument("--suites", default=" ".join(SUITES),
                      help=f"blank-separated, of {', '.join(SUITES)} (default: all)")
    plan.add_argument("--robot-dir", default="robot", help="the folder of pyodl's suites (default robot)")
    plan.set_defaults(func=run_plan)


def caller_workflow(model: str, data: str | None, mode: str, trainable: int | None, repository: str, ref: str) -> str:
    """The caller workflow's text."""
    lines = [
        "# Written by `pyodl ci init`: pyodl's Robot suites on this repository's model, on the Unicorn model of the",
        "# STM32L496 and under Renode (inputs: pyodl's README, \"Use pyodl in your repository's CI\").",
        "name: pyodl",
        "",
        "on:",
        "  push:",
        "  pull_request:",
        "",
        "jobs:",
        "  pyodl:",
        f"    uses: {repository}/.github/workflows/odl-ci.yml@{ref}",
        "    with:",
        f"      pyodl-repository: {repository}",
        f"      pyodl-ref: {ref}",
        f"      model: {model}",
        f"      data: {data}" if data else "      # data: recordings.csv  # subject,label,<channel>...: its windows",
        f"      mode: {mode}",
    ]
    if trainable is not None:
        lines.append(f"      trainable: \"{trainable}\"")
    lines += [f"      suites: {' '.join(SUITES)}", "      renode-revision: v1.16.1", ""]
    return "\n".join(lines)


def _inside(root: Path, path: str, option: str) -> str:
    """``path`` relative to the repository ``root`` (where the workflow runs), checked to be a file in it."""
    full = (root / path).resolve()
    if not full.is_file():
        raise ModelError(f"{option} {path}: no such file")
    try:
        relative = full.relative_to(root.resolve())
    except ValueError:
        raise ModelError(f"{option} {path}: not inside the repository {root.resolve()}") from None
    text = relative.as_posix()
    if re.search(r"\s|[\"'#:${}]", text):
        raise ModelError(f"{option} {text}: rename it without blanks or any of \"'#:${{}} (the workflow passes it "
                         "to Robot and renode-test as one word)")
    return text


def run_init(args: argparse.Namespace) -> int:
    root = Path.cwd()
    if not (root / ".git").exists():
        raise ModelError(f"{root} is not the root of a git repository (no .git): run pyodl ci init there")
    if not _REPOSITORY.fullmatch(args.repository):
        raise ModelError(f"--repository {args.repository!r}: expected OWNER/NAME")
    if not _REF.fullmatch(args.ref):
        raise ModelError(f"--ref {args.ref!r}: expected a branch, tag or commit")
    if args.trainable_layers is not None and args.mode != "tl":
        raise ModelError("--trainable-layers applies to --mode tl only")
    if args.model is None:
        found = sorted(p for p in root.rglob("*.keras") if ".git" not in p.relative_to(root).parts)
        if len(found) != 1:
            names = ", ".join(str(p.relative_to(root)) for p in found)
            raise ModelError("give --model: the repository has " + (
                f"{len(found)} .keras files ({names})" if found else "no .keras file"))
        args.model = str(found[0].relative_to(root))
    model = _inside(root, args.model, "--model")
    if not model.endswith(".keras"):
        raise ModelError(f"--model {model}: expected a Keras 3 '.keras' file")
    data = _inside(root, args.data, "--data") if args.data else None
    if data is not None and not data.endswith((".csv", ".npz")):
        raise ModelError(f"--data {data}: expected a recordings table (.csv or .npz)")
    out = root / CALLER
    if out.exists() and not args.force:
        raise ModelError(f"{CALLER} exists: give --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(caller_workflow(model, data, args.mode, args.trainable_layers, args.repository, args.ref))
    print(f"wrote {CALLER}: pyodl's suites ({', '.join(SUITES)}) on {model} at every push and pull request; "
          f"commit it")
    return EXIT_OK


def _word(path: str, option: str) -> str:
    full = str(Path(path).resolve())
    if re.search(r"\s", full):
        raise ModelError(f"{option} {full}: a path with a blank cannot pass through renode-test-action's arguments")
    return full


def run_plan(args: argparse.Namespace) -> int:
    from pyodl.robot.suite_model import SuiteModel  # checks every variable as the suites will

    suites = args.suites.split()
    unknown = [s for s in suites if s not in SUITES]
    if unknown or not suites:
        raise ModelError(f"suites {args.suites!r}: choose among {', '.join(SUITES)}")
    robot_dir = Path(args.robot_dir)
    tests = [_word(str(robot_dir / f"{s}.robot"), "suite") for s in suites]
    missing = [t for t in tests if not Path(t).is_file()]
    if missing:
        raise ModelError(f"no suite {missing[0]}: is --robot-dir pyodl's robot folder?")
    suite = SuiteModel.from_variables(args.model, args.data, args.mode, args.trainable_layers, args.optimizer,
                                      args.rate)
    assert suite is not None
    variables = [f"MODEL:{_word(args.model, 'model')}"]
    if args.data:
        variables.append(f"DATA:{_word(args.data, 'data')}")
    for name, value in (("MODE", args.mode), ("TRAINABLE", args.trainable_layers), ("OPTIMIZER", args.optimizer),
                        ("RATE", args.rate)):
        if value:
            if re.search(r"\s", value):
                raise ModelError(f"{name.lower()} {value!r}: no blanks")
            variables.append(f"{name}:{value}")
    estimate = [variables[0].removeprefix("MODEL:"), "--dataset-windows", str(DATASET_WINDOWS)]
    if suite.trainable is not None:
        estimate += ["--mode", "tl", "--trainable-layers", str(suite.trainable)]
    if args.optimizer:
        estimate += ["--optimizer", args.optimizer]
    print("variables=" + " ".join(f"--variable {v}" for v in variables))
    print("tests=" + " ".join(tests))
    print("estimate=" + " ".join(estimate))
    sys.stdout.flush()
    return EXIT_OK
