"""The package's folders are the data path (README, Layout): imports only go down it, TensorFlow stays out
of what runs without it, and tests/ mirrors pyodl/.

Every ``import`` is read with ``ast``, lazy ones inside functions included, so a new upward import fails
here even when no test runs through it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pyodl"
TESTS = Path(__file__).resolve().parent

# The data path, bottom first: a layer imports only the layers before it (and its own modules, acyclically).
LAYERS = ("data", "model", "toolchain", "board", "network", "reference", "resources", "experiments", "robot", "cli")
# What must run without TensorFlow: the model description, the builds, the boards, the networks, the
# estimator. Keras files are translated in model/keras_io, the only model module that may load it.
NO_TENSORFLOW = ("pyodl.data", "pyodl.model.architecture", "pyodl.model.memory_plan", "pyodl.model.export",
                 "pyodl.toolchain", "pyodl.board", "pyodl.network", "pyodl.resources")
TENSORFLOW = ("tensorflow", "keras")


def module_name(path: Path, package: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, package: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (``from a import b`` counts a.b when b is a module)."""
    me = module_name(path, package)
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = me.split(".")[: len(me.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            modules = {f"{base}.{alias.name}" for alias in node.names}
            modules = {m for m in modules if (package.parent / Path(*m.split("."))).with_suffix(".py").exists()
                       or (package.parent / Path(*m.split("."))).is_dir()}
            names.update(modules or {base})
    return names


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "pyodl" else None


def graph(package: Path) -> dict[str, set[str]]:
    return {module_name(p, package): imports_of(p, package) for p in sorted(package.rglob("*.py"))}


def violations(package: Path) -> list[str]:
    """Upward imports, import cycles inside a layer, and TensorFlow where it must not be."""
    edges = graph(package)
    problems = []
    for module, imported in edges.items():
        mine = layer_of(module)
        for target in sorted(imported):
            theirs = layer_of(target)
            if theirs is None or mine is None or theirs == mine:
                continue
            if theirs not in LAYERS or mine not in LAYERS:
                problems.append(f"{module} -> {target}: {mine if mine not in LAYERS else theirs} is not a layer "
                                f"of the data path {LAYERS}")
            elif LAYERS.index(theirs) > LAYERS.index(mine):
                problems.append(f"{module} -> {target}: {mine} may not import {theirs} (upward)")
    # Cycles among pyodl modules (inside a layer; across layers the rule above already forbids them).
    internal = {m: {t for t in ts if t in edges and t != m} for m, ts in edges.items()}
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for t in sorted(internal[m]):
            if state.get(t) == 1:
                problems.append("import cycle: " + " -> ".join([*stack[stack.index(t):], t]))
            elif t not in state:
                visit(t, [*stack, t])
        state[m] = 2

    for m in sorted(internal):
        if m not in state:
            visit(m, [m])
    # TensorFlow: directly, or through any pyodl module that loads it.
    reach: dict[str, set[str]] = {}

    def reached(m: str) -> set[str]:
        if m not in reach:
            reach[m] = set()
            for t in edges.get(m, ()):
                reach[m] |= {t} | (reached(t) if t in edges else set())
        return reach[m]

    for module in edges:
        if module.startswith(NO_TENSORFLOW):
            heavy = sorted(t for t in reached(module) if t.split(".")[0] in TENSORFLOW)
            if heavy:
                problems.append(f"{module} loads {heavy[0]} (possibly through another module); it must run "
                                "without TensorFlow")
    return problems


def test_imports_only_go_down_the_data_path() -> None:
    assert violations(PACKAGE) == []


def test_every_folder_of_the_package_is_a_layer() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(LAYERS)
    # pytest never collects a folder it takes for build output (its default norecursedirs), so a layer
    # named like one would have its tests mirrored but silently not run.
    assert not folders & {"build", "dist", "venv", "node_modules", "CVS", "_darcs"}


def _one_letter_apart(a: str, b: str) -> bool:
    """Equal but for one inserted, deleted or changed letter (``trainer``/``trainers``, ``host``/``hosts``)."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1:] == short for i in range(len(long)))


def test_no_two_module_names_differ_by_a_letter_or_a_plural() -> None:
    names = sorted({p.stem for p in PACKAGE.rglob("*.py") if p.stem != "__init__"}
                   | {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()})
    close = [(a, b) for i, a in enumerate(names) for b in names[i + 1:] if _one_letter_apart(a, b)]
    assert close == []


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    package = tmp_path / "pyodl"
    for layer in LAYERS[:-1]:
        (package / layer).mkdir(parents=True)
        (package / layer / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    for name, text in files.items():
        (package / name).write_text(text)
    return package


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    package = _plant(tmp_path, {"board/unicorn.py": "def f():\n    from pyodl.experiments import run\n",
                                "experiments/run.py": "import numpy\n"})
    assert violations(package) == ["pyodl.board.unicorn -> pyodl.experiments.run: board may not import "
                                   "experiments (upward)"]


def test_the_checker_sees_a_cycle_and_tensorflow(tmp_path: Path) -> None:
    package = _plant(tmp_path, {"model/a.py": "from . import b\n", "model/b.py": "from pyodl.model import a\n",
                                "model/keras_io.py": "import keras\n",
                                "model/export.py": "from pyodl.model.keras_io import load\n"})
    found = violations(package)
    assert "import cycle: pyodl.model.a -> pyodl.model.b -> pyodl.model.a" in found
    assert any(p.startswith("pyodl.model.export loads keras") for p in found)
    assert len(found) == 2


@pytest.mark.parametrize("module", ["pyodl.cli", "pyodl.board.unicorn", "pyodl.resources.estimate",
                                    "pyodl.network.open", "pyodl.experiments.personalize", "pyodl.robot.suite_model"])
def test_importing_does_not_load_tensorflow(module: str) -> None:
    """Argument errors come before heavy imports: these modules load in well under a second."""
    code = f"import sys, {module}; print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_tests_mirror_the_package() -> None:
    """Every test file sits in the folder of the code it tests, named after a module of that folder."""
    strays = []
    for test in TESTS.rglob("test_*.py"):
        folder = test.parent.relative_to(TESTS)
        if test.parent == TESTS:
            if test.stem not in ("test_layout", "test_packaging"):
                strays.append(str(test.relative_to(TESTS)))
            continue
        modules = {p.stem for p in (PACKAGE / folder).glob("*.py")}
        tested = test.stem.removeprefix("test_")
        if not any(tested == m or tested.startswith(f"{m}_") for m in modules):
            strays.append(str(test.relative_to(TESTS)))
    assert strays == [], f"tests with no module of that name in pyodl/<same folder>: {strays}"


def test_every_path_the_architecture_document_names_exists() -> None:
    """docs/architecture.md names modules and files by path, in backticks or as relative links: each must exist,
    so the document cannot keep naming a module that was moved, renamed or split (as the old design notes did)."""
    import re

    root = PACKAGE.parent
    document = root / "docs" / "architecture.md"
    # A repository path: a top-level folder of the project, then a file with an extension or a folder ('/').
    looks_like_a_path = re.compile(r"(?:pyodl|firmware|renode|robot|tests|benchmarks|scripts|cmake|docs|\.github)/"
                                   r"[\w./-]*(?:\.\w+|/)")
    text = re.sub(r"```.*?```", "", document.read_text(), flags=re.S)  # a fenced block's ``` is no code span
    named: set[str] = set()
    # Code spans: delimited by runs of equal length (``a `b` c``), and they may wrap across lines.
    for _, span in re.findall(r"(`+)(.+?)(?<!`)\1(?!`)", text, flags=re.S):
        if looks_like_a_path.fullmatch(span.strip()):
            named.add(span.strip())
    for label, target in re.findall(r"\[([^\]]+)\]\(([^)\s]+)\)", text):
        if looks_like_a_path.fullmatch(label):
            named.add(label)
        if not re.match(r"[a-z]+:|#", target):  # a relative link, resolved from docs/ as a renderer does
            resolved = (document.parent / target.split("#")[0]).resolve()
            named.add(resolved.relative_to(root).as_posix() + ("/" if target.endswith("/") else ""))
    missing = sorted(p for p in named if not (root / p).exists() or (p.endswith("/") and not (root / p).is_dir()))
    assert len(named) > 50, f"only {len(named)} paths found in {document}: is the parser still reading it?"
    assert missing == [], f"docs/architecture.md names paths that do not exist: {missing}"
