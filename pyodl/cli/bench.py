"""``pyodl bench``: the paper's model built and trained on the simulated board (or timed on a real one),
against the estimate and the paper's Table III; ``--inference``: float against int8 inference."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from pyodl.cli.serial_board import open_board
from pyodl.cli.shared import BATCH, EXIT_OK, WINDOW, trainable_count
from pyodl.model.architecture import PAPER_INPUT_LENGTHS, ModelError
from pyodl.resources.bench import KEPT_MARKER


def _windows(text: str) -> list[int]:
    """--inputs: comma-separated window lengths, each a valid --input."""
    try:
        return [int(WINDOW(t.strip())) for t in text.split(",")]
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: each length {exc}") from None


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="build the paper's model for each input size and mode, train a batch on the "
                                     "simulated board, and compare with the estimate and the paper",
                       description="For each --inputs T and --modes M, build the firmware of the paper's model "
                                   "(Glorot weights from seed 0), train --batch samples on the simulated STM32L496 "
                                   "and measure what the linker placed (SRAM, flash), the instructions and modelled "
                                   "Cortex-M4 cycles per sample and per SGD step, and the deepest stack use; print "
                                   "them beside the estimate (pyodl estimate) and the paper's Table III. --out "
                                   "writes the table to DIR/RESULTS.md (keeping what other benchmarks wrote below "
                                   "its marker) and the plot to DIR/bench.png.")
    p.add_argument("--inputs", type=_windows, default=",".join(map(str, PAPER_INPUT_LENGTHS)),
                   help="comma-separated input lengths (default 20,40,60,80,100)")
    p.add_argument("--modes", default="full,tl", help="comma-separated modes (default full,tl)")
    p.add_argument("--backend", choices=("unicorn", "serial"), default="unicorn",
                   help="unicorn: build every configuration and count instructions on the simulated board "
                        "(default); serial: time one batch with the DWT cycle counter of the board at --port, "
                        "which runs the firmware of one --inputs T and --modes M (its parameters are put back "
                        "afterwards), beside the simulated instruction count")
    p.add_argument("--port", default=None, help="serial backend: the board's pyserial URL, e.g. /dev/ttyACM0")
    p.add_argument("--batch", type=BATCH, default=32, help="training samples measured per cell (default 32)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="also write DIR/RESULTS.md and DIR/bench.png (e.g. benchmarks)")
    p.add_argument("--inference", action="store_true",
                   help="instead of training: one window's float PREDICT against int8 PREDICT_Q with 8-, 4- and "
                        "2-bit weights (calibrated on 16 random windows), estimated and measured on the simulated "
                        "board, with the int8 copy's SRAM and image bytes (not with --out or --backend serial)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of Markdown")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pyodl.model.architecture import paper_model
    from pyodl.resources.bench import PAPER_TABLE_III, BenchRow, measure, plot, results_markdown
    from pyodl.resources.estimate import estimate
    from pyodl.toolchain.firmware import FirmwareBuilder
    from pyodl.toolchain.sources import git_commit

    inputs: list[int] = args.inputs
    modes = args.modes.split(",")
    if any(m not in ("full", "tl") for m in modes):
        raise ModelError(f"--modes {args.modes!r}: full and/or tl, e.g. full,tl")
    if args.backend == "serial":
        if len(inputs) != 1 or len(modes) != 1 or not args.port:
            raise ModelError("--backend serial measures the firmware the board runs: give its --port, one "
                             "--inputs T and one --modes M (e.g. --inputs 40 --modes full)")
        return _serial(args, inputs[0], modes[0])
    if args.inference:
        if args.out or args.backend != "unicorn":
            raise ModelError("--inference measures on the simulated board and prints its table: without --out or "
                             "--backend serial")
        return _inference(args, inputs)
    rows = []
    with tempfile.TemporaryDirectory(prefix="pyodl-bench-") as tmp:
        builder = FirmwareBuilder(Path(tmp) / "build")
        configs = [(t, m) for t in inputs for m in modes]
        for k, (t, mode) in enumerate(configs, 1):
            print(f"[{k}/{len(configs)}] T={t} {mode}: build, then {args.batch} samples on the simulated board",
                  file=sys.stderr, flush=True)
            model = paper_model(t, 0)
            trainable = trainable_count(mode, None)
            est = estimate(model.arch, trainable, args.batch, "paper")
            got = measure(model, trainable, builder, Path(tmp) / f"{t}-{mode}", batch=args.batch)
            paper = PAPER_TABLE_III.get((t, mode))
            rows.append(BenchRow(t, mode, est.ram_total, got.ram_bytes, est.flash_total, got.flash_bytes,
                                 est.instructions_per_sample, got.instructions_per_sample, est.cycles_per_sample,
                                 got.cycles_per_sample, est.training_macs_per_sample, got.instructions_per_step,
                                 got.cycles_per_step, got.protocol_per_sample, got.stack_high_water, args.batch,
                                 paper[0] if paper else None, paper[1] if paper else None,
                                 paper[2] if paper else None, got.simulator_mips))
    markdown = results_markdown(rows, args.command_line, git_commit(), "bench.png" if args.out else None)
    if args.json:
        print(json.dumps([r.to_json() for r in rows], indent=2))
    else:
        print(markdown)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        results = out / "RESULTS.md"
        # Sections below the marker are other benchmarks' figures (each with its command): kept as they are.
        kept = results.read_text().partition(KEPT_MARKER)[2] if results.is_file() else ""
        results.write_text(markdown + (f"\n{KEPT_MARKER}{kept}" if kept else ""))
        plot(rows, out / "bench.png")
        print(f"wrote {out / 'RESULTS.md'} and {out / 'bench.png'}", file=sys.stderr)
    return EXIT_OK


def _inference(args: argparse.Namespace, inputs: list[int]) -> int:
    """``pyodl bench --inference``: the paper's model at each T, float and int8 inference of one window."""
    from pyodl.model.architecture import paper_model
    from pyodl.resources.inference import estimate_inference, measure_inference
    from pyodl.toolchain.firmware import FirmwareBuilder

    specs = ["8", "4", "2"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="pyodl-bench-") as tmp:
        builder = FirmwareBuilder(Path(tmp) / "build")
        for k, t in enumerate(inputs, 1):
            print(f"[{k}/{len(inputs)}] T={t}: build, calibrate, quantize, 8 windows per width", file=sys.stderr,
                  flush=True)
            model = paper_model(t, 0)
            for spec, m in zip(specs, measure_inference(model, specs, builder, Path(tmp) / f"q{t}"), strict=True):
                est = estimate_inference(model.arch, spec)
                rows.append({"input": t, "bits": spec, "float_instructions": round(m.float_instructions),
                             "float_cycles": round(m.float_cycles), "int8_instructions": round(m.int8_instructions),
                             "int8_cycles": round(m.int8_cycles), "estimated_instructions": round(est.instructions),
                             "estimated_cycles": round(est.cycles), "int8_ram_bytes": m.int8_section_bytes,
                             "estimated_int8_ram_bytes": est.ram_bytes, "image_bytes": m.image_bytes,
                             "model_bytes": sum(est.model_bytes.values()),
                             "float_param_bytes": est.float_param_bytes, "agreement": m.agreement})
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    print(f"`{args.command_line}` (the paper's model, Glorot weights from seed 0, 8 random windows; PREDICT of a "
          "loaded window in float32, PREDICT_Q in int8; instructions and modelled cycles per window on the Unicorn "
          "board)\n")
    print("| T | weights | float instr. | int8 instr. (est.) | int8/float | float cycles | int8 cycles (est.) | "
          "ms at 80 MHz (int8) | .odl_int8 SRAM (est.) | int8 model / float32 bytes | int8 = float class |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['input']} | {r['bits']}-bit | {r['float_instructions']:,} | {r['int8_instructions']:,} "
              f"({r['estimated_instructions']:,}) | {r['int8_instructions'] / r['float_instructions']:.2f} | "
              f"{r['float_cycles']:,} | {r['int8_cycles']:,} ({r['estimated_cycles']:,}) | "
              f"{r['int8_cycles'] / 80e3:.2f} | {r['int8_ram_bytes']:,} ({r['estimated_int8_ram_bytes']:,}) | "
              f"{r['model_bytes']:,} / {r['float_param_bytes']:,} | {r['agreement']:.0%} |")
    return EXIT_OK


def _serial(args: argparse.Namespace, input_len: int, mode: str) -> int:
    """Cycles the board's own DWT counter measures, beside the Unicorn board's instruction count of the same
    firmware."""
    from pyodl.model.architecture import paper_model
    from pyodl.resources.bench import PAPER_TABLE_III, measure, time_on_board
    from pyodl.toolchain.firmware import FirmwareBuilder

    model = paper_model(input_len, 0)
    trainable = trainable_count(mode, None)
    transport = open_board(args.port, 30.0)
    timing = time_on_board(transport, model, args.batch)
    with tempfile.TemporaryDirectory(prefix="pyodl-bench-") as tmp:
        simulated = measure(model, trainable, FirmwareBuilder(Path(tmp) / "build"), Path(tmp) / "model",
                            batch=args.batch)
    paper = PAPER_TABLE_III.get((input_len, mode))
    row = {"input_len": input_len, "mode": mode, "clock_hz": timing.clock_hz,
           "board_cycles_per_sample": timing.cycles_per_sample,
           "unicorn_instructions_per_sample": simulated.instructions_per_sample,
           "unicorn_cycles_per_sample": simulated.cycles_per_sample,
           # On a real board: how far the Unicorn board's cycle model is from the silicon's DWT_CYCCNT.
           "cycle_model_error": simulated.cycles_per_sample / timing.cycles_per_sample - 1,
           "cycles_per_instruction": timing.cycles_per_sample / simulated.instructions_per_sample,
           "board_cycles_per_step": timing.cycles_per_step, "board_seconds_per_batch": timing.seconds_per_batch,
           "wall_seconds_per_batch": timing.wall_seconds_per_batch, "batch": args.batch,
           "paper_seconds_per_batch": paper[1] if paper else None}
    if args.json:
        print(json.dumps(row, indent=2))
        return EXIT_OK
    print(f"# Training on the board at {args.port} ({timing.clock_hz / 1e6:g} MHz)\n")
    print("Cycles from the firmware's DWT cycle counter, per TRAIN_SAMPLE; instructions and modelled cycles from "
          "the Unicorn board running the same firmware (model error: modelled / measured - 1). s/batch: "
          "on-device compute of a batch at the board's clock; wall: every round trip, the windows' UART "
          "transfer included.\n")
    print("| T | mode | cycles/sample | instr./sample (Unicorn) | cycles/instr. | modelled cycles/sample | "
          "model error | SGD step cycles | s/batch | wall s/batch | paper s/batch |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    paper_s = f"{paper[1]:.2f}" if paper else "-"
    print(f"| {input_len} | {mode} | {timing.cycles_per_sample:,.0f} | {simulated.instructions_per_sample:,.0f} | "
          f"{row['cycles_per_instruction']:.2f} | {simulated.cycles_per_sample:,.0f} | "
          f"{row['cycle_model_error']:+.1%} | {timing.cycles_per_step:,} | {timing.seconds_per_batch:.2f} | "
          f"{timing.wall_seconds_per_batch:.2f} | {paper_s} |")
    return EXIT_OK
