"""Monitor commands per Robot test on the Renode path: each is a round trip through Robot's `Execute Command` to
Renode (about 7 ms on a real Renode 1.16.1, more with a Python peripheral or a run behind it).

The count needs no Renode: the suites run with ``--variable BACKEND:renode`` on the stand-in for Renode's keywords
(tests/robot/fixtures/renode_standin.py: the real firmware on the Unicorn board behind the same monitor commands,
renode/pyodl_monitor.py run by CPython), and every command the keyword library sends is counted. ``--before
CHECKOUT`` also runs an older checkout's suites and keyword library (e.g. a ``git worktree`` of an older commit)
for a before/after table. Wall times need a real Renode: benchmarks/RESULTS.md ("The Renode path") has both.

    .venv/bin/python benchmarks/renode_round_trips.py [--before /path/to/old/checkout]

Prints a Markdown table of the golden, protocol and ram suites. The persistence suite is left out: the stand-in
has no model of Renode's flash controller cut (``flashctl ControlWrite``) or of Save and Load.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STANDIN = ROOT / "tests" / "robot" / "fixtures"
SUITES = ("Golden", "Protocol", "Ram")


def count(checkout: Path) -> dict[str, int]:
    """Monitor commands of every test of ``checkout``'s suites, with ``checkout``'s keyword library."""
    with tempfile.TemporaryDirectory(prefix="pyodl-round-trips-") as tmp:
        record = Path(tmp) / "record.json"
        selection = [arg for suite in SUITES for arg in ("--suite", suite)]
        status = subprocess.run(
            [sys.executable, "-m", "robot", "--outputdir", tmp, "--variable", "BACKEND:renode", "--pythonpath",
             str(checkout), "--pythonpath", str(STANDIN), "--prerunmodifier",
             f"renode_standin.ImportStandIn:{record}", "--console", "none", *selection, str(checkout / "robot")],
            check=False, cwd=checkout).returncode
        tests = json.loads(record.read_text())
    failed = [name for name, t in tests.items() if t["status"] != "PASS"]
    if status != 0 or failed:
        raise SystemExit(f"{checkout}: Robot failed ({status}); failing tests: {failed}")
    return {name.removeprefix("Robot."): int(t["monitor_commands"]) for name, t in tests.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, default=None, metavar="CHECKOUT",
                        help="an older checkout to count too (its robot/ and pyodl/)")
    args = parser.parse_args()
    after = count(ROOT)
    before = count(args.before.resolve()) if args.before else None
    if before is None:
        print("| test | monitor commands |\n|---|---|")
        for name, n in after.items():
            print(f"| {name} | {n:,} |")
        print(f"| **all** | **{sum(after.values()):,}** |")
        return 0
    print("| test | before | after | ratio |\n|---|---|---|---|")
    for name, n in after.items():
        b = before.get(name)
        print(f"| {name} | {b:,} | {n:,} | {b / n:.1f}x |" if b and n else f"| {name} | {b} | {n:,} | |")
    total_b, total_a = sum(before.values()), sum(after.values())
    print(f"| **all** | **{total_b:,}** | **{total_a:,}** | **{total_b / total_a:.1f}x** |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
