"""Ships the C sources inside the wheel: everything else is in pyproject.toml.

An installed pyodl exports and builds firmware with no checkout, so the wheel carries a copy of the tree
CMake builds from (CMakeLists.txt, cmake/, firmware/) and the Renode platform, as ``pyodl/_sources``;
``pyodl.toolchain.sources`` finds it there, or in the repository when pyodl runs from a checkout.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED_TREE = ("CMakeLists.txt", "cmake", "firmware", "renode")  # what pyodl.toolchain.sources.source_root() finds


class BuildPyWithSources(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return  # an editable install reads the checkout itself
        root = Path(__file__).resolve().parent
        target = Path(self.build_lib) / "pyodl" / "_sources"
        shutil.rmtree(target, ignore_errors=True)
        for name in SHIPPED_TREE:
            source = root / name
            if source.is_dir():
                shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.o", "*.so"))
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / name)


setup(cmdclass={"build_py": BuildPyWithSources})
