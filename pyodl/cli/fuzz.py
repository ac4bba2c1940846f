"""``pyodl fuzz``: random and malformed inputs over the mailbox and the UART of the simulated board, each
checked."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from pyodl.cli.shared import EXIT_MISMATCH, EXIT_OK, add_model_args, load_model, whole


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fuzz", help="random and malformed inputs over the mailbox and the UART, each checked: no "
                                    "fault, no hang, INFO answered, parameters unchanged unless a valid command "
                                    "changed them",
                       description="Build the firmware for a model and send it --count seeded random inputs "
                                   "on the simulated STM32L496 (Unicorn board): well-formed commands with "
                                   "out-of-range arguments, unknown commands, garbage in every mailbox field, "
                                   "windows, learning rates and parameters holding NaN, infinities and huge values; "
                                   "over the console UART random bytes, truncated frames, corrupted CRCs and "
                                   "impossible lengths. After each input the CPU must not have faulted, touched an "
                                   "unmapped address or hung; INFO must still be answered over both transports; the "
                                   "parameters must be finite, within bound, and unchanged unless a command that may "
                                   "change them succeeded; every complete frame must get exactly one reply. Exit "
                                   "status 1 when any input broke that.")
    add_model_args(p, " and of the inputs drawn")
    p.add_argument("--count", type=whole(1, 100_000_000), default=100_000, help="inputs (default 100000)")
    p.add_argument("--json", action="store_true", help="the figures as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from pyodl.board.fuzz import fuzz
    from pyodl.toolchain.firmware import FirmwareBuilder

    model = load_model(args)
    with tempfile.TemporaryDirectory(prefix="pyodl-fuzz-") as tmp:
        firmware = FirmwareBuilder(Path(tmp) / "build").export_and_build(model, Path(tmp) / "model")
        with tqdm(total=args.count, desc="fuzzing", unit="input", leave=False, file=sys.stderr) as bar:
            report = fuzz(firmware.elf, args.count, args.seed or 0, lambda done: bar.update(done - bar.n))
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(f"fuzz: {args.model} model on the simulated STM32L496, {report.inputs:,} inputs (seed {args.seed or 0}) "
              f"in {report.seconds:.1f} s")
        print("inputs by kind: " + ", ".join(f"{k} {v:,}" for k, v in sorted(report.by_kind.items())))
        print(f"distinct statuses answered: {len(report.statuses)}; parameter changes by accepted commands: "
              f"{report.weight_changes}")
        for what, found in (("crashes", report.crashes), ("hangs", report.hangs),
                            ("corruptions", report.corruptions), ("unanswered", report.unanswered)):
            print(f"{what}: {len(found)}" + "".join(f"\n  {line}" for line in found[:10]))
        print("PASS" if report.failures == 0 else "FAIL")
    return EXIT_OK if report.failures == 0 else EXIT_MISMATCH
