"""The ``pyodl`` command line."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

import numpy as np

from pyodl.board.base import BoardError
from pyodl.experiments.fleet import STRATEGIES as FLEET_STRATEGIES
from pyodl.experiments.trainer import TRAINERS
from pyodl.model.architecture import (
    PAPER_INPUT_LENGTHS,
    PAPER_TL_LAYERS,
    Architecture,
    Model,
    ModelError,
    glorot_params,
    paper_architecture,
)
from pyodl.model.export import PARAM_BOUND
from pyodl.model.fold import fold_frozen_batchnorm, foldable
from pyodl.model.optimizer import OPTIMIZER_HELP, Optimizer
from pyodl.model.quantized import check_bits_spec, weight_bits
from pyodl.network.open import BACKENDS

if TYPE_CHECKING:
    from pyodl.board.protocol import Transport
    from pyodl.network.board import BoardInfo

EXIT_OK, EXIT_MISMATCH, EXIT_ERROR = 0, 1, 2
EXIT_INTERRUPTED, EXIT_TERMINATED = 128 + signal.SIGINT, 128 + signal.SIGTERM  # as a shell reports them


PAPER_DEFAULTS = {"input": 40, "channels": 3, "classes": 6, "seed": 0}


def _load_model(args: argparse.Namespace) -> Model:
    """``paper`` builds the paper's model with seeded Keras-default initial weights; anything else is a
    ``.keras`` file, whose own shapes and weights are used."""
    if args.model == "paper":
        for key, value in PAPER_DEFAULTS.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
        arch = paper_architecture(args.input, args.channels, args.classes)
        return Model(arch, glorot_params(arch, args.seed))
    given = [f"--{key}" for key in ("input", "channels", "classes") if getattr(args, key) is not None]
    if given:
        raise ModelError(f"{', '.join(given)} apply to the paper model only; {args.model} carries its own "
                         "shapes and weights")
    from pyodl.model.keras_io import load

    return load(Path(args.model))


def _trainable(mode: str, trainable_layers: int | None) -> int | None:
    """None for Full mode; the number of last parameter layers for TL (default 2: the paper's TL)."""
    if mode == "full":
        if trainable_layers is not None:
            raise ModelError("--trainable-layers applies to --mode tl only")
        return None
    return PAPER_TL_LAYERS if trainable_layers is None else trainable_layers


def _device_model(model: Model, trainable: int | None, stream: TextIO | None = None) -> Model:
    """The model the device runs: in a TL build the frozen BatchNormalizations fold into the frozen layer
    before them (:mod:`pyodl.model.fold`). Prints the import's notes and the fold's."""
    device = fold_frozen_batchnorm(model, trainable)
    for note in device.notes:
        print(f"note: {note}", file=stream)
    return device


def _export_command(args: argparse.Namespace) -> str:
    parts = ["pyodl export", args.model]
    if args.model == "paper":
        parts += [f"--{key} {getattr(args, key)}" for key in PAPER_DEFAULTS]
    if args.trainable_layers is not None:
        parts.append(f"--trainable-layers {args.trainable_layers}")
    if args.optimizer != "sgd":
        parts.append(f"--optimizer {args.optimizer}")
    if args.param_bound != PARAM_BOUND:
        parts.append(f"--param-bound {args.param_bound:g}")
    if args.dataset_windows:
        parts.append(f"--dataset-windows {args.dataset_windows}")
    return " ".join(parts)


def _dataset_windows(args: argparse.Namespace) -> int:
    if args.dataset_windows < 0:
        raise ModelError(f"--dataset-windows must be >= 0, not {args.dataset_windows}")
    return int(args.dataset_windows)


def _optimizer(args: argparse.Namespace) -> Optimizer:
    try:
        return Optimizer.parse(args.optimizer)
    except ValueError as exc:
        raise ModelError(f"--optimizer: {exc}") from None


def cmd_export(args: argparse.Namespace) -> int:
    from pyodl.model.export import export

    optimizer = _optimizer(args)
    model = _device_model(_load_model(args), args.trainable_layers)
    windows = _dataset_windows(args)
    for path in export(model, Path(args.out), args.trainable_layers, _export_command(args), optimizer,
                       args.param_bound, windows):
        print(f"wrote {path}")
    return EXIT_OK


def cmd_golden_check(args: argparse.Namespace) -> int:
    from pyodl.network.open import open_network
    from pyodl.reference import golden

    if args.steps < 1 or args.batch < 1:
        raise ModelError("--steps and --batch must be >= 1")
    if not (np.isfinite(args.lr) and args.lr > 0):
        raise ModelError("--lr must be a finite number > 0")
    optimizer = _optimizer(args)
    trainable = _trainable(args.mode, args.trainable_layers)
    model = _device_model(_load_model(args), trainable, sys.stderr)
    windows, labels = golden.random_batches(model.arch, args.steps, args.batch, (args.seed or 0) + 1)

    t0 = time.perf_counter()
    # A TL build keeps the frozen layers const, as the device does: the check covers that build.
    lockstep: np.ndarray | None = None
    left_out = 0
    with tempfile.TemporaryDirectory(prefix="pyodl-golden-") as tmp, \
            open_network(args.backend, model, Path(tmp), trainable, args.port, optimizer,
                         dataset_windows=args.batch) as net:
        c_losses = [net.train_step(x, y, args.lr) for x, y in zip(windows, labels, strict=True)]
        c_params = net.get_params()
        t_c = time.perf_counter() - t0
        run = golden.train(model, windows, labels, args.lr, trainable, optimizer)
        t_tf = time.perf_counter() - t0 - t_c
        atol, rtol = golden.tolerance(optimizer, args.lr, args.steps)
        diffs = golden.compare(model, c_params, run.params, atol, rtol)
        trajectory_ok = all(d.ok for d in diffs)
        if not trajectory_ok:
            # Told apart: a decision that flipped on a rounding difference, or a wrong computation.
            lockstep, left_out = golden.lockstep(net, model, windows, labels, args.lr, trainable, optimizer)
    # Lockstep starts every step from fresh optimizer state on both sides: for momentum or Adam it checks
    # the first update only, never the state carried across steps, so there it diagnoses but cannot pass.
    ok = trajectory_ok or bool(lockstep is not None and (lockstep <= 1.0).all() and not optimizer.stateful)

    if args.json:
        print(json.dumps({
            "model": args.model, "input": model.arch.input_len, "mode": args.mode, "trainable_layers": trainable,
            "steps": args.steps, "batch": args.batch, "lr": args.lr, "optimizer": optimizer.describe(),
            "backend": args.backend,
            "tolerance": {"atol": atol, "rtol": rtol},
            "layers": [d.__dict__ | {"ok": d.ok} for d in diffs],
            "final_loss": {"c": c_losses[-1], "tf": float(run.losses[-1])}, "trajectory_ok": trajectory_ok,
            "lockstep_worst_ratio": None if lockstep is None else float(lockstep.max()),
            "lockstep_samples_at_a_kink": left_out, "ok": ok,
        }, indent=2))
    else:
        print(f"golden check: {args.model} model, input ({model.arch.input_len}, {model.arch.input_ch}), "
              f"{args.mode} mode" + (f" (last {trainable} layers)" if trainable else "") +
              f", {args.steps} steps of {optimizer.describe()}, batch {args.batch}, lr {args.lr}, "
              f"backend {args.backend}")
        print(f"tolerance |w_c - w_tf| <= {atol:g} + {rtol:g} * |w_tf|" + (
            f" (Adam: {golden.ATOL:g} + {golden.ADAM_STEP_ATOL:g} * lr * steps, since its step does not scale "
            "with the gradient)" if optimizer.kind == "adam" else ""))
        print(f"{'layer':<16} {'max abs diff':>13} {'max rel diff':>13} {'of tolerance':>13}  result")
        for d in diffs:
            print(f"{d.name:<16} {d.max_abs:>13.3e} {d.max_rel:>13.3e} {d.worst_ratio:>12.2%}  "
                  f"{'ok' if d.ok else 'FAIL'}")
        print(f"final loss: C {c_losses[-1]:.6f}, TF {run.losses[-1]:.6f}; "
              f"time: C build+train {t_c:.1f} s, TF {t_tf:.1f} s")
        if lockstep is not None:
            worst = int(np.argmax(lockstep))
            print(f"the trajectories parted; lockstep check (each of the {args.steps} steps from TensorFlow's "
                  f"weights, same tolerance): worst {lockstep.max():.2%} of the tolerance, at step {worst + 1}"
                  + (f"; {left_out} samples whose ReLU or max-pool decision sat within rounding (relative "
                     f"{golden.KINK_RELATIVE:g}) were left out of their step" if left_out else ""))
        if trajectory_ok:
            print("PASS")
        elif ok:
            print("PASS (lockstep): every step computes what TensorFlow computes; the trajectories parted where "
                  "a ReLU or max-pool decision flipped on a rounding difference")
        elif lockstep is not None and (lockstep <= 1.0).all():
            print(f"FAIL: the trajectories parted; with {optimizer.describe()} the lockstep check vouches for the "
                  "first update from fresh optimizer state only, not for the state carried across steps")
        else:
            print("FAIL: weights outside the tolerance" + (" even from shared weights" if lockstep is not None
                                                           else ""))
    return EXIT_OK if ok else EXIT_MISMATCH


def _print_inference(arch: Architecture, bits_spec: str, as_json: bool) -> None:
    """``pyodl estimate --inference int8``: the int8 copy's memory and one window's cost."""
    from pyodl.resources.inference import INT8_FIT, estimate_inference

    q = estimate_inference(arch, bits_spec)
    if as_json:
        print(json.dumps({"bits": q.bits, "int8_ram_bytes": q.ram_bytes, "model_bytes": q.model_bytes,
                          "float_param_bytes": q.float_param_bytes, "instructions_per_window": round(q.instructions),
                          "cycles_per_window": round(q.cycles), "milliseconds_at_80mhz": q.milliseconds,
                          "millijoules": q.millijoules}, indent=2))
        return
    print(f"\nint8 inference (weights of {','.join(map(str, q.bits))} bits per parameter layer, activations int8)")
    print(f"  {'int8 copy in SRAM (.odl_int8, in the total above)':<52} {q.ram_bytes:>9,} B")
    for name, size in q.model_bytes.items():
        print(f"  {'model: ' + name:<52} {size:>9,} B")
    print(f"  {'model total (float32 parameters: ' + format(q.float_param_bytes, ',') + ' B)':<52} "
          f"{sum(q.model_bytes.values()):>9,} B")
    print(f"predicted per window (PREDICT_Q): {q.instructions:,.0f} instructions, {q.cycles:,.0f} Cortex-M4 cycles, "
          f"{q.milliseconds:.2f} ms and {q.millijoules:.4f} mJ at 80 MHz (fit within "
          f"{INT8_FIT['instructions']:.0%} on its calibration set)")


def cmd_estimate(args: argparse.Namespace) -> int:
    from pyodl.resources.estimate import estimate

    if args.inference == "float" and args.bits is not None:
        raise ModelError("--bits applies to --inference int8")
    bits_spec = args.bits or "8"
    check_bits_spec(bits_spec)
    optimizer = _optimizer(args)
    trainable = _trainable(args.mode, args.trainable_layers)
    windows = _dataset_windows(args)
    model = _device_model(_load_model(args), trainable, sys.stderr if args.json else None)
    est = estimate(model.arch, trainable, args.batch, args.model, optimizer=optimizer, dataset_windows=windows)
    if args.inference == "int8":
        weight_bits(model.arch, bits_spec)  # a width per parameter layer of this model
    if args.json:
        if args.inference == "int8":
            _print_inference(model.arch, bits_spec, as_json=True)
        else:
            print(json.dumps(est.to_json(), indent=2))
        return EXIT_OK if est.fits else EXIT_MISMATCH
    arch = model.arch
    print(f"estimate: {args.model} model, input ({arch.input_len}, {arch.input_ch}), {est.mode} mode "
          f"(last {est.trainable_layers} of {len(arch.param_layers)} parameter layers trained), batch {est.batch}")
    print("\nSRAM")
    for name, size in est.ram.items():
        print(f"  {name:<40} {size:>9,} B")
    print(f"  {'total':<40} {est.ram_total:>9,} B of {est.sram_bytes:,} ({est.ram_margin:+,} B margin)")
    print("flash")
    for name, size in est.flash.items():
        print(f"  {name:<40} {size:>9,} B")
    print(f"  {'total (bank 1)':<40} {est.flash_total:>9,} B of {est.flash_bytes:,} ({est.flash_margin:+,} B margin)")
    print(f"  {'persistence slots A and B (bank 2)':<40} {est.slot_bytes:>9,} B of {est.flash_bytes:,}")
    print(f"\n{'layer':<14} {'pass':<9} {'MACs':>10} {'adds':>8} {'divs':>6} {'exps':>5}")
    for lo in est.layers:
        for pass_name, ops in (("forward", lo.forward), ("backward", lo.backward), ("update", lo.update)):
            if ops.macs or ops.adds or ops.divs or ops.exps:
                print(f"{lo.name:<14} {pass_name:<9} {ops.macs:>10,} {ops.adds:>8,} {ops.divs:>6,} {ops.exps:>5,}")
    print(f"\ntraining MACs per sample: {est.training_macs_per_sample:,}")
    print(f"predicted instructions: {est.instructions_per_sample:,} per sample, {est.instructions_per_step:,} per "
          f"{args.optimizer} step, {est.instructions_per_batch:,} per batch of {est.batch}")
    print(f"predicted Cortex-M4 cycles: {est.cycles_per_sample:,} per sample, {est.cycles_per_step:,} per step, "
          f"{est.cycles_per_batch:,} per batch")
    for clock, t in est.time_and_energy().items():
        print(f"  at {t['clock_hz'] / 1e6:g} MHz ({clock}): {t['seconds_per_sample'] * 1e3:,.1f} ms and "
              f"{t['millijoules_per_sample']:.3f} mJ per sample, {t['seconds_per_batch']:,.2f} s and "
              f"{t['millijoules_per_batch']:,.1f} mJ per batch")
    if args.inference == "int8":
        _print_inference(model.arch, bits_spec, as_json=False)
    for note in est.notes:
        print(f"note: {note}")
    if est.fits:
        print(f"verdict: fits the STM32L496 ({est.ram_margin:,} B of SRAM and {est.flash_margin:,} B of flash left)")
        return EXIT_OK
    over = [f"SRAM by {-est.ram_margin:,} B" if est.ram_margin < 0 else "",
            f"flash by {-est.flash_margin:,} B" if est.flash_margin < 0 else "",
            f"flash bank 2 (the persistence slots) by {est.slot_bytes - est.flash_bytes:,} B"
            if est.slot_bytes > est.flash_bytes else ""]
    print(f"verdict: does NOT fit the STM32L496: over {' and '.join(o for o in over if o)}")
    return EXIT_MISMATCH


def cmd_fuzz(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from pyodl.board.fuzz import fuzz
    from pyodl.toolchain.firmware import FirmwareBuilder

    if args.count < 1:
        raise ModelError("--count must be >= 1")
    model = _load_model(args)
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


def cmd_bench(args: argparse.Namespace) -> int:
    from pyodl.model.architecture import paper_model
    from pyodl.resources.bench import PAPER_TABLE_III, BenchRow, measure, plot, results_markdown
    from pyodl.resources.estimate import estimate
    from pyodl.toolchain.firmware import FirmwareBuilder
    from pyodl.toolchain.sources import git_commit

    inputs = [int(t) for t in args.inputs.split(",")]
    modes = args.modes.split(",")
    if any(m not in ("full", "tl") for m in modes) or any(t < 1 for t in inputs):
        raise ModelError("--modes takes full and/or tl; --inputs positive lengths, e.g. 20,40")
    if args.backend == "serial":
        if len(inputs) != 1 or len(modes) != 1 or not args.port:
            raise ModelError("--backend serial measures the firmware the board runs: give its --port, one "
                             "--inputs T and one --modes M (e.g. --inputs 40 --modes full)")
        return _bench_serial(args, inputs[0], modes[0])
    if args.inference:
        if args.out or args.backend != "unicorn":
            raise ModelError("--inference measures on the simulated board and prints its table: without --out or "
                             "--backend serial")
        return _bench_inference(args, inputs)
    rows = []
    with tempfile.TemporaryDirectory(prefix="pyodl-bench-") as tmp:
        builder = FirmwareBuilder(Path(tmp) / "build")
        configs = [(t, m) for t in inputs for m in modes]
        for k, (t, mode) in enumerate(configs, 1):
            print(f"[{k}/{len(configs)}] T={t} {mode}: build, then {args.batch} samples on the simulated board",
                  file=sys.stderr, flush=True)
            model = paper_model(t, 0)
            trainable = _trainable(mode, None)
            est = estimate(model.arch, trainable, args.batch, "paper")
            got = measure(model, trainable, builder, Path(tmp) / f"{t}-{mode}", batch=args.batch)
            paper = PAPER_TABLE_III.get((t, mode))
            rows.append(BenchRow(t, mode, est.ram_total, got.ram_bytes, est.flash_total, got.flash_bytes,
                                 est.instructions_per_sample, got.instructions_per_sample, est.cycles_per_sample,
                                 got.cycles_per_sample, est.training_macs_per_sample, got.instructions_per_step,
                                 got.cycles_per_step, got.protocol_per_sample, got.stack_high_water, args.batch,
                                 paper[0] if paper else None, paper[1] if paper else None,
                                 paper[2] if paper else None, got.simulator_mips))
    command = "pyodl bench " + " ".join(sys.argv[2:]) if args.command_line is None else args.command_line
    markdown = results_markdown(rows, command, git_commit())
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


def _bench_inference(args: argparse.Namespace, inputs: list[int]) -> int:
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
    command = "pyodl bench " + " ".join(sys.argv[2:]) if args.command_line is None else args.command_line
    print(f"`{command}` (the paper's model, Glorot weights from seed 0, 8 random windows; PREDICT of a loaded "
          "window in float32, PREDICT_Q in int8; instructions and modelled cycles per window on the Unicorn board)\n")
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


def _open_board(url: str, timeout: float) -> Transport:
    """The UART transport of the board at ``url``; what to check when it cannot be opened."""
    import serial

    from pyodl.board.uart import open_serial

    try:
        return open_serial(url, timeout=timeout)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise BoardError(f"cannot open {url}: {exc}. Is the NUCLEO-L496ZG plugged in by its ST-LINK USB connector "
                         "(CN1), and may you use serial ports (Debian: sudo adduser $USER dialout, then log in "
                         "again)?") from None


def _board_info(transport: Transport, url: str) -> tuple[BoardInfo, float, int]:
    """INFO, its round-trip time in seconds and the cycles the firmware spent on it."""
    from pyodl.board.protocol import Command, ProtocolError, Request
    from pyodl.network.board import info_from_reply

    t0 = time.perf_counter()
    try:
        reply = transport.execute(Request(Command.INFO))
        info = info_from_reply(reply)
    except ProtocolError as exc:
        raise BoardError(f"the board at {url} does not answer pyodl frames ({exc}): flash the firmware "
                         "(pyodl flash), check that nothing else holds the port, and press the board's black "
                         "RESET button") from None
    return info, time.perf_counter() - t0, reply.cycles


def _describe_board(info: BoardInfo, url: str, seconds: float, cycles: int) -> dict[str, object]:
    from pyodl.board.protocol import CLOCK_STATUSES, PROTOCOL_VERSION

    clock_status = next((name for name, code in CLOCK_STATUSES.items() if code == info.clock_status),
                        str(info.clock_status))
    boot = {0: "the exported defaults", 1: "flash slot A", 2: "flash slot B"}.get(info.boot_slot, str(info.boot_slot))
    return {
        "port": url, "protocol_version": info.protocol_version,
        "protocol_ok": info.protocol_version == PROTOCOL_VERSION,
        "model_hash": f"0x{info.model_hash:08x}", "input": [info.input_len, info.input_ch],
        "classes": info.num_classes, "param_layers": info.param_layers, "trainable": info.trainable,
        "clock_hz": info.clock_hz, "clock_status": clock_status, "ram_static_bytes": info.ram_static_bytes,
        "stack_bytes": info.stack_size, "stack_high_water_bytes": info.stack_high_water,
        "parameters_from": boot if info.boot_slot == 0 else f"{boot}, copy {info.boot_sequence}",
        "round_trip_ms": round(1000 * seconds, 2), "info_cycles": cycles,
    }


def _print_board(d: dict[str, object]) -> None:
    print(f"board at {d['port']}: pyodl firmware, protocol {d['protocol_version']}")
    print(f"  model        {d['model_hash']}: input {d['input'][0]} x {d['input'][1]}, {d['classes']} classes, "  # type: ignore[index]
          f"{d['param_layers']} parameter layers ({d['trainable']} trained)")
    print(f"  clock        {int(d['clock_hz']) / 1e6:g} MHz ({d['clock_status']})")  # type: ignore[call-overload]
    print(f"  SRAM         {d['ram_static_bytes']:,} B static; stack {d['stack_bytes']:,} B reserved, "
          f"{d['stack_high_water_bytes']:,} B used at most")
    print(f"  parameters   from {d['parameters_from']}")
    print(f"  round trip   {d['round_trip_ms']} ms for INFO ({d['info_cycles']:,} cycles on the board)")


def cmd_board_check(args: argparse.Namespace) -> int:
    from pyodl.board.protocol import PROTOCOL_VERSION

    info, seconds, cycles = _board_info(_open_board(args.port, args.timeout), args.port)
    described = _describe_board(info, args.port, seconds, cycles)
    if args.json:
        print(json.dumps(described, indent=2))
    else:
        _print_board(described)
    if info.protocol_version != PROTOCOL_VERSION:
        print(f"pyodl board-check: the board speaks protocol {info.protocol_version}, this pyodl "
              f"{PROTOCOL_VERSION}: flash it again (pyodl flash)", file=sys.stderr)
        return EXIT_MISMATCH
    return EXIT_OK


def cmd_flash(args: argparse.Namespace) -> int:
    from pyodl.board.programmer import choose_tool, program
    from pyodl.network.board import BoardNetwork
    from pyodl.toolchain.firmware import FirmwareBuilder

    tool = choose_tool(args.tool)  # before the build: a missing programmer is known at once
    optimizer = _optimizer(args)
    trainable = _trainable(args.mode, args.trainable_layers)
    windows = _dataset_windows(args)
    model = _device_model(_load_model(args), trainable, sys.stderr)
    with tempfile.TemporaryDirectory(prefix="pyodl-flash-") as tmp:
        builder = FirmwareBuilder(Path(tmp) / "build", clock=args.clock, console=args.console)
        firmware = builder.export_and_build(model, Path(tmp) / "model", trainable, optimizer, windows)
        print(f"built {firmware.flash_bytes():,} B of flash, {firmware.ram_bytes():,} B of SRAM; "
              f"programming with {tool}", file=sys.stderr, flush=True)
        program(firmware.elf, tool)
        model_hash = firmware.model_hash()
    print("programmed, verified and reset", file=sys.stderr)
    if args.no_check:
        return EXIT_OK
    if args.console != "lpuart1":
        print("the USART2 console is not the ST-LINK port: check it on your adapter with pyodl board-check",
              file=sys.stderr)
        return EXIT_OK
    transport = _open_board(args.port, args.timeout)
    info, seconds, cycles = _board_info(transport, args.port)
    BoardNetwork(transport, model.arch, model_hash, optimizer)  # refuses a board that runs another model
    _print_board(_describe_board(info, args.port, seconds, cycles))
    return EXIT_OK


def _bench_serial(args: argparse.Namespace, input_len: int, mode: str) -> int:
    """Cycles the board's own DWT counter measures, beside the Unicorn board's instruction count of the same
    firmware."""
    from pyodl.model.architecture import paper_model
    from pyodl.resources.bench import PAPER_TABLE_III, measure, time_on_board
    from pyodl.toolchain.firmware import FirmwareBuilder

    model = paper_model(input_len, 0)
    trainable = _trainable(mode, None)
    transport = _open_board(args.port, 30.0)
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


def _load_dataset(spec: str, rate: float | None) -> tuple[list, list[str], str, list[str]]:
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


def _channels(spec: str | None, names: list[str], count: int, default_why: str,
              setup: list[str]) -> tuple[int, ...]:
    """``--channels`` as indices or names of the dataset's channels; None: the first ``count``."""
    if spec is None:
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
def _progress_bars(unit: str, signals: _Signals) -> Iterator[Callable[[str, int, int], None]]:
    """A progress callback drawing one bar per task on stderr; an interrupted run's bars are cleared on the way
    out, not after the message that says so. It raises again a signal that TensorFlow swallowed."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def progress(what: str, done: int, total: int) -> None:
        signals.raise_again()
        bar = bars.get(what)
        if bar is None:
            kind = "step" if "build" in what else "epoch" if "pretrain" in what else unit
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


class _Report(Protocol):
    def markdown(self, command: str) -> str: ...

    def to_json(self) -> dict[str, object]: ...


def _write_results(args: argparse.Namespace, name: str, report: _Report, plot: Callable[[Any, Path], None],
                   plots: str) -> int:
    """An experiment's results.md, results.json and plots into --out; the table on stdout."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = f"pyodl {name} " + " ".join(sys.argv[2:]) if args.command_line is None else args.command_line
    (out / "results.md").write_text(report.markdown(command))
    (out / "results.json").write_text(json.dumps(report.to_json(), indent=2))
    plot(report, out)
    print(report.markdown(command))
    print(f"wrote {out}/results.md, results.json, {plots}", file=sys.stderr)
    return EXIT_OK


def _subjects(text: str | None) -> list[int] | None:
    try:
        return [int(s) for s in text.split(",")] if text else None
    except ValueError:
        raise ModelError(f"--subjects takes comma-separated subject numbers, e.g. 1,2,3; got {text!r}") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def cmd_stream(args: argparse.Namespace) -> int:
    # Not TensorFlow: every argument and the dataset are checked before it is loaded.
    from pyodl.experiments import stream as st

    chosen = _subjects(args.subjects)
    if args.teacher.startswith("keras:") and not Path(args.teacher.removeprefix("keras:")).is_file():
        raise ModelError(f"--teacher {args.teacher}: no such file")
    try:
        cfg = st.Config(input_len=args.input, stride=args.stride or args.input // 2, seed=args.seed,
                        trainer=args.trainer, teacher=args.teacher, drift=args.drift,
                        trainable_layers=args.trainable_layers, replay=args.replay, batch=args.batch,
                        train_every=args.train_every, learning_rate=args.lr, drift_learning_rate=args.drift_lr,
                        budget=args.budget, disagree_target=args.disagree_target, max_windows=args.max_windows,
                        pretrain_epochs=args.pretrain_epochs, self_label=args.self_label, new_class=args.new_class,
                        explore=args.explore, repeats=args.repeats,
                        sweep_targets=SWEEP_TARGETS if args.sweep else (),
                        sweep_budgets=SWEEP_BUDGETS if args.sweep else ())
    except ValueError as exc:  # named as the option: "max_windows must ..." -> "--max-windows must ..."
        field, _, rest = str(exc).partition(" ")
        option = {"learning_rate": "lr", "drift_learning_rate": "drift-lr", "input_len": "input"}.get(field, field)
        raise ModelError(f"--{option.replace('_', '-')} {rest}") from None
    recordings, classes, name, _ = _load_dataset(args.dataset, args.rate)
    subjects = chosen if chosen is not None else sorted({r.subject for r in recordings})[:3]
    cache = None if args.no_cache else Path(args.cache).expanduser()
    with _progress_bars("window", args.signals) as progress:
        report = st.run(recordings, classes, subjects, cfg, name, cache, progress, args.workers, args.ray)
    return _write_results(args, "stream", report, st.plot, "stream.png, pruning.png")


def cmd_federate(args: argparse.Namespace) -> int:
    # Not TensorFlow, Flower or Ray: every argument and the dataset are checked before they are loaded.
    from pyodl.experiments import federate as fed

    chosen = _subjects(args.subjects)
    try:
        faults = tuple(fed.Fault.parse(f) for f in args.fault)
        cfg = fed.Config(input_len=args.input, stride=args.stride or args.input // 2, rounds=args.rounds,
                         local_epochs=args.local_epochs, batch=args.batch, learning_rate=args.lr,
                         personalize_epochs=args.personalize_epochs, personalize_every=args.personalize_every,
                         pretrain_epochs=args.pretrain_epochs, seed=args.seed, trainer=args.trainer,
                         strategy=args.strategy, workers=args.workers, ray_address=args.ray,
                         round_timeout=args.round_timeout, faults=faults,
                         ports=tuple(args.ports.split(",")) if args.ports else ())
    except ValueError as exc:  # named as the option: "local_epochs must ..." -> "--local-epochs must ..."
        field, _, rest = str(exc).partition(" ")
        if field not in {f.name for f in dataclasses.fields(fed.Config)}:
            raise ModelError(str(exc)) from None
        option = {"learning_rate": "lr", "input_len": "input", "ray_address": "ray"}.get(field, field)
        raise ModelError(f"--{option.replace('_', '-')} {rest}") from None
    fed.fleet.require()  # before the data and the pretraining
    recordings, classes, name, _ = _load_dataset(args.dataset, args.rate)
    subjects = chosen if chosen is not None else sorted({r.subject for r in recordings})
    cache = None if args.no_cache else Path(args.cache).expanduser()
    with _progress_bars("round", args.signals) as progress:
        report = fed.run(recordings, classes, subjects, cfg, name, cache, progress)
    return _write_results(args, "federate", report, fed.plot, "rounds.png")


def cmd_personalize(args: argparse.Namespace) -> int:
    # Not TensorFlow: every argument and the dataset are checked before it is loaded.
    from pyodl.experiments import personalize as pers

    chosen = _subjects(args.subjects)
    if args.model is None and args.pretrain:
        raise ModelError("--pretrain applies to --model (the paper's model is always pretrained here)")
    if not (np.isfinite(args.lr) and args.lr > 0):
        raise ModelError("--lr must be a finite number > 0")
    optimizer = _optimizer(args)
    if args.model is not None and not Path(args.model).is_file():
        raise ModelError(f"--model {args.model}: no such file")
    if args.all_channels and args.channels:
        raise ModelError("--all-channels and --channels exclude each other")
    if (args.workers > 1 or args.ray) and args.trainer == "serial":
        raise ModelError("--workers N and --ray need a board per worker: --trainer serial trains on the one board at "
                         "--port (use --workers 1)")
    if args.no_quantize and args.quantize:
        raise ModelError("--quantize and --no-quantize exclude each other")
    quantize = () if args.no_quantize else tuple(args.quantize or ("8", "4"))
    for spec in quantize:
        check_bits_spec(spec)
    recordings, classes, name, channel_names = _load_dataset(args.dataset, args.rate)
    setup: list[str] = []
    general = pers.GeneralModel()
    input_len = args.input or 40
    if args.model is None:
        count = len(channel_names) if args.all_channels else 3
        channels = _channels(args.channels, channel_names, count, "all of them" if args.all_channels else
                             "the first 3, the accelerometer, like the paper", setup)
        setup.append("general model: the paper's CNN, pretrained here on the other subjects")
    else:
        from pyodl.data.windows import Normalizer
        from pyodl.model.keras_io import load  # TensorFlow, now that the arguments are known good

        user = load(Path(args.model))
        input_len = args.input or user.arch.input_len
        channels = _channels(args.channels, channel_names, user.arch.input_ch,
                             f"the first {user.arch.input_ch}, as many as {Path(args.model).name} takes", setup)
        norm_file = Path(args.model).with_suffix(".norm.json")
        norm = Normalizer.load(norm_file) if norm_file.is_file() and not args.pretrain else None
        general = pers.GeneralModel(Path(args.model).name, user, args.pretrain, norm)
        how = "its architecture pretrained here on the other subjects" if args.pretrain else (
            f"used as is, inputs normalised as {norm_file.name} says" if norm else
            f"used as is, inputs normalised with the other subjects' statistics (no {norm_file.name} beside it)")
        setup.append(f"general model: {Path(args.model).name}, {how}")
        setup += [f"note: {note}" for note in user.notes]
    cfg = pers.Config(input_len=input_len, stride=args.stride or input_len // 2, channels=channels,
                      epochs=args.epochs, warmup_epochs=args.warmup_epochs, pretrain_epochs=args.pretrain_epochs,
                      seed=args.seed, trainer=args.trainer, split=args.split, trainable_layers=args.trainable_layers,
                      no_pretrain_epochs=args.no_pretrain_epochs, learning_rate=args.lr,
                      optimizer=optimizer.describe(), port=args.port, tool=args.tool, quantize=quantize,
                      adaptive_length=args.adaptive_length)
    arch = general.architecture(cfg.input_len, len(channels), len(classes))
    for spec in quantize:
        weight_bits(arch, spec)  # one width per parameter layer of this model
    tl = args.trainable_layers or pers.default_tl_layers(general, arch)
    setup.append(f"TL trains the last {tl} of {len(arch.param_layers)} parameter layers"
                 + ("" if args.trainable_layers else
                    " (the paper's choice, its two Dense layers)" if args.model is None else
                    " (the model's Dense head)") + "; --trainable-layers to choose")
    folds = [f"{arch.layers[i + 1].name} into {arch.layers[i].name}" for i in foldable(arch, tl)]
    if folds:
        setup.append(f"TL folds the frozen BatchNormalization {', '.join(folds)} (pyodl export explains)")
    setup.append(f"split: {args.split} (" + ("each recording's first half personalizes, its second half tests"
                                                if args.split == "time" else
                                                "of each activity's recordings, the first half personalize, the "
                                                "others test") + ")")
    subjects = chosen if chosen is not None else sorted({r.subject for r in recordings})[:3]
    cache = None if args.no_cache else Path(args.cache).expanduser()
    with _progress_bars("epoch", args.signals) as progress:
        report = pers.run(recordings, classes, subjects, cfg, name, cache, progress, general, setup, args.workers,
                           args.ray)
    return _write_results(args, "personalize", report, pers.plot, "confusion.png, losses.png"
                          + (", adaptive.png" if report.adaptive_curve("TL") else ""))


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", default="paper",
                   help="'paper' (the seed paper's 1-D CNN, default) or a Keras 3 .keras file")
    p.add_argument("--input", type=int, default=None, metavar="T",
                   help=f"paper model input length (paper: {', '.join(map(str, PAPER_INPUT_LENGTHS))}; default 40)")
    p.add_argument("--channels", type=int, default=None, help="paper model input channels (default 3)")
    p.add_argument("--classes", type=int, default=None, help="paper model classes (default 6)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the paper model's initial weights and of golden-check's batches (default 0)")


def _add_mode_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", choices=("full", "tl"), default="full",
                   help="full: train all layers; tl: only the last --trainable-layers (default 2)")
    p.add_argument("--trainable-layers", type=int, default=None, metavar="N",
                   help="with --mode tl: how many of the last Conv1D/Dense/BatchNormalization layers train (default 2)")


# In benchmarks/RESULTS.md, what follows this line is not `pyodl bench`'s and survives its rewrite.
KEPT_MARKER = "<!-- Below: other benchmarks, each with the command that produced it; pyodl bench keeps them. -->\n"


# pyodl stream --sweep: the operating points besides the defaults (AGREEMENT 0.5, BUDGET 0.3).
SWEEP_TARGETS = (0.2, 0.35, 0.65)
SWEEP_BUDGETS = (0.1, 0.2, 0.45, 0.6)


def _add_dataset_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset-windows", type=int, default=0, metavar="N",
                   help="reserve SRAM for N labelled windows that the host stores in bulk and the batch commands "
                        "(TRAIN_BATCH, EVALUATE) train on or predict (default 0: no region; the per-window "
                        "commands work either way)")


def _add_recordings_args(p: argparse.ArgumentParser) -> None:
    """Where an experiment's recordings come from."""
    p.add_argument("--dataset", default="watch",
                   help="watch (bundled, default), wisdm:PATH (WISDM v1.1 raw file) or table:PATH (CSV/.npz)")
    p.add_argument("--rate", type=float, default=None, help="sampling rate in Hz of a table dataset")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyodl", description="On-device personalization of 1-D CNNs for HAR.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("export", help="write firmware/generated/model.h and model_params.c for a model",
                       description="Write model.h and model_params.c for a model. BatchNormalization runs on its "
                                   "moving statistics, which stay fixed on the device (a device accumulates the "
                                   "gradient of one sample at a time, so batch statistics never exist); its gamma "
                                   "and beta train when it lies among the trained layers; in a TL build a frozen "
                                   "one right after a frozen Conv1D, DepthwiseConv1D or Dense without activation "
                                   "is folded into that layer's weights and bias. Dropout runs as the "
                                   "identity. Every unsupported layer is listed at once.")
    _add_model_args(p)
    p.add_argument("--trainable-layers", type=int, default=None, metavar="N",
                   help="build for training only the last N Conv1D/Dense/BatchNormalization layers (TL): the "
                        "others stay const in flash (default: all layers, Full mode)")
    p.add_argument("--optimizer", default="sgd", help=OPTIMIZER_HELP)
    p.add_argument("--param-bound", type=float, default=PARAM_BOUND, metavar="B",
                   help="the device refuses, whole, any training step or parameter write that would take a "
                        "parameter beyond +-B or to NaN (weights unchanged, gradients cleared) "
                        f"(default {PARAM_BOUND:g}; the model's own parameters must lie within it)")
    _add_dataset_arg(p)
    p.add_argument("--out", default="firmware/generated", help="output directory (default firmware/generated)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("golden-check",
                       help="train the C library and TensorFlow on the same random batches and compare weights",
                       description="Train the C library and TensorFlow on the same random batches and compare every "
                                   "weight: |w_c - w_tf| <= 1e-6 + 1e-5 |w_tf|. If the two trajectories part (a ReLU "
                                   "or max-pool decision flipped on a rounding difference), each step is checked "
                                   "again from TensorFlow's weights with the same tolerance (lockstep), leaving out "
                                   "the samples whose decision sat within rounding; the output says so.")
    _add_model_args(p)
    _add_mode_args(p)
    p.add_argument("--steps", type=int, default=100, help="training steps (default 100)")
    p.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
    p.add_argument("--lr", type=float, default=0.01, help="learning rate (default 0.01)")
    p.add_argument("--optimizer", default="sgd", help=OPTIMIZER_HELP + ". With momentum or Adam only the "
                   "trajectory can pass: lockstep restarts the optimizer at every step")
    p.add_argument("--backend", choices=BACKENDS, default="host",
                   help="where the C library trains: host (this computer, through ctypes), unicorn (the firmware "
                        "on the simulated STM32L496), renode (the firmware in Renode, which must be installed) "
                        "or serial (a board running the firmware, see --port)")
    p.add_argument("--port", default=None,
                   help="serial backend: pyserial URL of the board, e.g. /dev/ttyACM0 or socket://127.0.0.1:3456 "
                        "(a Renode you started with its uart_socket macro); the renode backend needs none: it "
                        "starts Renode with the console UART on a pseudo-terminal")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_golden_check)

    p = sub.add_parser("estimate", help="RAM, flash, operations and instructions of on-device training, before "
                                        "any build, with a verdict against the STM32L496")
    _add_model_args(p)
    _add_mode_args(p)
    p.add_argument("--batch", type=int, default=32, help="samples per training step (default 32)")
    p.add_argument("--optimizer", default="sgd", help=OPTIMIZER_HELP)
    _add_dataset_arg(p)
    p.add_argument("--inference", choices=("float", "int8"), default="float",
                   help="int8: also the int8 copy's memory and one window's int8 inference (PREDICT_Q): "
                        "instructions, cycles, time and energy at 80 MHz (--json: that part only)")
    p.add_argument("--bits", default=None, metavar="BITS",
                   help="--inference int8: weight bits, 8, 4 or 2, or one per parameter layer as 8,4,4,8 "
                        "(default 8)")
    p.add_argument("--json", action="store_true", help="print the estimate as JSON")
    p.set_defaults(func=cmd_estimate)

    p = sub.add_parser("fuzz", help="random and malformed inputs over the mailbox and the UART, each checked: no "
                                    "fault, no hang, INFO answered, parameters unchanged unless a valid command "
                                    "changed them")
    _add_model_args(p)
    p.add_argument("--count", type=int, default=100_000, help="inputs (default 100000)")
    p.add_argument("--json", action="store_true", help="the figures as JSON")
    p.set_defaults(func=cmd_fuzz)

    p = sub.add_parser("bench", help="build the paper's model for each input size and mode, train a batch on the "
                                     "simulated board, and compare with the estimate and the paper")
    p.add_argument("--inputs", default=",".join(map(str, PAPER_INPUT_LENGTHS)),
                   help="comma-separated input lengths (default 20,40,60,80,100)")
    p.add_argument("--modes", default="full,tl", help="comma-separated modes (default full,tl)")
    p.add_argument("--backend", choices=("unicorn", "serial"), default="unicorn",
                   help="unicorn: build every configuration and count instructions on the simulated board "
                        "(default); serial: time one batch with the DWT cycle counter of the board at --port, "
                        "which runs the firmware of one --inputs T and --modes M (its parameters are put back "
                        "afterwards), beside the simulated instruction count")
    p.add_argument("--port", default=None, help="serial backend: the board's pyserial URL, e.g. /dev/ttyACM0")
    p.add_argument("--batch", type=int, default=32, help="training samples measured per cell (default 32)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="also write DIR/RESULTS.md and DIR/bench.png (e.g. benchmarks)")
    p.add_argument("--inference", action="store_true",
                   help="instead of training: one window's float PREDICT against int8 PREDICT_Q with 8-, 4- and "
                        "2-bit weights (calibrated on 16 random windows), estimated and measured on the simulated "
                        "board, with the int8 copy's SRAM and image bytes (not with --out or --backend serial)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of Markdown")
    p.set_defaults(func=cmd_bench, command_line=None)

    p = sub.add_parser("board-check", help="ask a board running the pyodl firmware for its model, clock, RAM "
                                           "and stack high-water mark (one INFO round trip)")
    p.add_argument("--port", default="/dev/ttyACM0",
                   help="pyserial URL of the board: the NUCLEO-L496ZG's ST-LINK port (default /dev/ttyACM0) or "
                        "socket://HOST:PORT (a Renode socket terminal)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for an answer (default 5)")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    p.set_defaults(func=cmd_board_check)

    p = sub.add_parser("flash", help="build the firmware for a model, write it into a NUCLEO-L496ZG through its "
                                     "ST-LINK (OpenOCD or pyOCD), then check that it answers with that model",
                       description="Build the firmware for a model and program it into a NUCLEO-L496ZG plugged "
                                   "in by its ST-LINK USB connector: OpenOCD (Debian package openocd, its "
                                   "board/st_nucleo_l4.cfg) or pyOCD (pip install pyocd; pyocd pack install "
                                   "stm32l496zgtx). The tool verifies and resets the board; then an INFO round "
                                   "trip over the ST-LINK virtual COM port checks the model.")
    _add_model_args(p)
    _add_mode_args(p)
    p.add_argument("--optimizer", default="sgd", help=OPTIMIZER_HELP)
    p.add_argument("--tool", choices=("openocd", "pyocd"), default=None,
                   help="the programmer (default: openocd if installed, else pyocd)")
    _add_dataset_arg(p)
    p.add_argument("--clock", choices=("pll80", "msi4"), default="pll80",
                   help="core clock: 80 MHz through the PLL (default) or the 4 MHz reset clock")
    p.add_argument("--console", choices=("lpuart1", "usart2"), default="lpuart1",
                   help="console UART: LPUART1 on PG7/PG8, the ST-LINK virtual COM port (default), or USART2 on "
                        "PA2/PA3 for an external adapter")
    p.add_argument("--port", default="/dev/ttyACM0", help="the board's ST-LINK virtual COM port (default /dev/ttyACM0)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the check's answer (default 5)")
    p.add_argument("--no-check", action="store_true", help="do not check the board over its serial port afterwards")
    p.set_defaults(func=cmd_flash)

    p = sub.add_parser("personalize", help="leave-one-subject-out personalization (the paper's Table II): TL and "
                                           "Full trained by the firmware on the simulated board")
    _add_recordings_args(p)
    p.add_argument("--subjects", default=None, help="comma-separated held-out subjects (default: the first 3)")
    p.add_argument("--model", default=None, metavar="MODEL.keras",
                   help="your general model (default: the paper's CNN, pretrained here): used as is, with "
                        "MODEL.norm.json's normalisation if it is beside it, or with --pretrain trained from "
                        "scratch on the other subjects")
    p.add_argument("--pretrain", action="store_true", help="with --model: pretrain its architecture here")
    p.add_argument("--trainable-layers", type=int, default=None, metavar="N",
                   help="TL trains the last N Conv1D/Dense/BatchNormalization layers (default: 2 for the paper's "
                        "model, the Dense head of --model)")
    p.add_argument("--channels", default=None,
                   help="channels to use, as indices or names, e.g. 0,1,2 or ax,ay,az (default: the first 3, "
                        "the watch's accelerometer, or as many as --model takes)")
    p.add_argument("--split", choices=("time", "recording"), default="time",
                   help="time: each recording's first half personalizes, its second half tests (default); "
                        "recording: whole recordings, so no test window comes from a bout trained on")
    p.add_argument("--input", type=int, default=None,
                   help="window length at 20 Hz (default 40, or --model's input length)")
    p.add_argument("--stride", type=int, default=None, help="window stride (default: half the window)")
    p.add_argument("--all-channels", action="store_true",
                   help="use every channel (default: the first 3, the accelerometer, like the paper)")
    p.add_argument("--epochs", type=int, default=20, help="personalization epochs (default 20)")
    p.add_argument("--lr", type=float, default=0.01, help="personalization learning rate (default 0.01)")
    p.add_argument("--optimizer", default="sgd", help=OPTIMIZER_HELP + " (the general model is pretrained with Adam "
                   "in TensorFlow either way)")
    p.add_argument("--warmup-epochs", type=int, default=5,
                   help="Full: epochs training only the last layer first (default 5)")
    p.add_argument("--pretrain-epochs", type=int, default=30, help="general model epochs (Adam, default 30)")
    p.add_argument("--no-pretrain-epochs", type=int, default=200, metavar="E",
                   help="No Pretrain's own budget (default 200): it starts from random weights, so a fine-tuning "
                        "budget leaves it far from converged (20 epochs: training loss 2.0 -> 1.7); on the watch "
                        "data its training loss flattens around 200 epochs (losses.png shows the curves)")
    p.add_argument("--seed", type=int, default=0, help="seed of initial weights and shuffling (default 0)")
    p.add_argument("--trainer", choices=TRAINERS, default="board",
                   help="board: the firmware on the simulated STM32L496, the Unicorn model (default); tf: TensorFlow, "
                        "same batches; serial: the firmware on a real board at --port, programmed with --tool for "
                        "each subject and condition whose model it does not run yet, over the UART; renode: the "
                        "firmware in Renode (the `renode` program on the PATH), over its console UART")
    p.add_argument("--port", default=None, help="--trainer serial: the board's pyserial URL, e.g. /dev/ttyACM0")
    p.add_argument("--tool", choices=("openocd", "pyocd"), default=None,
                   help="--trainer serial: the programmer that loads each condition's firmware (without one, the "
                        "board must already run the right firmware, which fits a single condition only)")
    p.add_argument("--quantize", action="append", default=None, metavar="BITS",
                   help="after each condition's training, quantize its model on the device (weights of BITS bits "
                        "per output channel: 8, 4 or 2, or one width per parameter layer as 8,4,4,8; activations int8, "
                        "calibrated on the personalization windows) and score it too; with --trainer tf and for the "
                        "general model, the same C library built for this computer quantizes; repeat for several "
                        "(default: 8 and 4)")
    p.add_argument("--no-quantize", action="store_true", help="score the float models only")
    p.add_argument("--adaptive-length", type=int, default=None, metavar="ROWS",
                   help="adaptive inference of the 8-bit models: a cheap mode on the window's newest ROWS rows, the "
                        "whole window when its confidence is low; results.md and adaptive.png give macro F1 against "
                        "instructions per window for each threshold (default: half the window; 0: none)")
    p.add_argument("--out", default="results/personalize", help="results folder (default results/personalize)")
    p.add_argument("--cache", default="~/.cache/pyodl/pretrained", help="where pretrained general models are kept")
    p.add_argument("--no-cache", action="store_true", help="always pretrain again")
    p.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                   help="run subjects in N local processes at once (default 1); the results are the same")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="run subjects as tasks on the Ray cluster at ADDRESS (what `ray start --head` printed, or "
                        "auto) instead of local processes; its nodes need pyodl and its fleet extra")
    p.set_defaults(func=cmd_personalize, command_line=None)

    p = sub.add_parser("stream", help="a held-out subject's windows arrive one at a time: the device decides which to "
                                      "ask a teacher about (automatic data pruning), learns from them and watches "
                                      "for a concept drift",
                       description="For each held-out subject, the general model of `pyodl personalize` (pretrained on "
                                   "the other subjects, cached alike) starts on the device. The first half of each of "
                                   "the subject's recordings arrives one window at a time, in recording order; the "
                                   "rest is the held-out test. The device predicts each window and its query policy "
                                   "decides whether to ask the teacher for the label; labelled windows join a replay "
                                   "buffer the device trains on. Runs: static (no learning), always-query, "
                                   "AGREEMENT (a confidence threshold adapted to the teacher's disagreement rate "
                                   "among queries), the same without the drift detector, BUDGET (adapted to a query "
                                   "rate), random queries at AGREEMENT's rate, both pruning policies with "
                                   "self-labels (an unqueried window the device is sure of joins its replay buffer "
                                   "with its own class), both with exploration (a share of the windows queried at "
                                   "random whatever the confidence) and random queries at the rate of BUDGET with "
                                   "exploration. Every decision runs in the "
                                   "firmware on the simulated board (--trainer board) or in its Python twin with "
                                   "TensorFlow training (--trainer tf): the same decisions from the same "
                                   "confidences.")
    _add_recordings_args(p)
    p.add_argument("--subjects", default=None, help="comma-separated held-out subjects (default: the first 3)")
    p.add_argument("--drift", choices=("none", "side", "rotation", "subject", "new-class"), default="none",
                   help="halfway through the stream: none (default); side: the other arm (watch data); rotation: "
                        "the sensor turned a quarter turn about z; subject: the next subject's windows (the "
                        "general model is pretrained without either); new-class: "
                        "the general model is pretrained without --new-class, whose windows come last")
    p.add_argument("--new-class", type=int, default=0, metavar="K",
                   help="--drift new-class: the class index the general model never sees (default 0)")
    p.add_argument("--teacher", default="oracle",
                   help="who answers a query: oracle (the true label, default), general (the general model in "
                        "TensorFlow, a phone's copy), wide (a ~9x bigger CNN pretrained here on the other "
                        "subjects, cached alike) or keras:PATH (your Keras model, used as is, taking the same "
                        "normalised windows)")
    p.add_argument("--trainer", choices=("board", "tf"), default="board",
                   help="board: the firmware on the simulated STM32L496 decides and trains (default); tf: the same "
                        "decisions in Python, TensorFlow trains")
    p.add_argument("--input", type=int, default=40, metavar="T", help="window length (default 40)")
    p.add_argument("--stride", type=int, default=None, help="window stride (default: half the window)")
    p.add_argument("--trainable-layers", type=int, default=None, metavar="N",
                   help="layers the device trains, counted from the output (default 2, the paper's TL)")
    p.add_argument("--replay", type=int, default=256, metavar="N",
                   help="the device's replay buffer of labelled windows, in its dataset region (default 256)")
    p.add_argument("--batch", type=int, default=16, help="windows drawn from the buffer per step (default 16)")
    p.add_argument("--train-every", type=int, default=4, metavar="K",
                   help="stream windows between training steps, queried or not (default 4)")
    p.add_argument("--lr", type=float, default=0.01, help="SGD learning rate (default 0.01)")
    p.add_argument("--drift-lr", type=float, default=0.03,
                   help="learning rate while a drift is detected (default 0.03)")
    p.add_argument("--budget", type=float, default=0.3, help="BUDGET's target query rate (default 0.3)")
    p.add_argument("--disagree-target", type=float, default=0.5,
                   help="AGREEMENT's target rate of teacher disagreement among queries (default 0.5)")
    p.add_argument("--self-label", type=float, default=0.9, metavar="C",
                   help="the '+ self-labels' runs: an unqueried window predicted with at least this confidence joins "
                        "the replay buffer with the device's own class (default 0.9)")
    p.add_argument("--explore", type=float, default=0.1, metavar="E",
                   help="the '+ exploration' runs: this share of the windows is queried at random whatever the "
                        "device's confidence, within BUDGET's rate (default 0.1)")
    p.add_argument("--repeats", type=int, default=1, metavar="N",
                   help="run each learning run N times with other replay and random draws (same general model); "
                        "means over subjects and repeats (default 1)")
    p.add_argument("--max-windows", type=int, default=None, metavar="N", help="cut each stream to N windows")
    p.add_argument("--sweep", action="store_true",
                   help="more operating points for pruning.png's curves: AGREEMENT at disagreement targets "
                        f"{', '.join(map(str, SWEEP_TARGETS))} (each with random queries at its rate) and BUDGET at "
                        f"rates {', '.join(map(str, SWEEP_BUDGETS))} (each also with exploration)")
    p.add_argument("--pretrain-epochs", type=int, default=30, help="general model epochs (Adam, default 30)")
    p.add_argument("--seed", type=int, default=0, help="seed of the general model and the draws (default 0)")
    p.add_argument("--out", default="results/stream", help="results folder (default results/stream)")
    p.add_argument("--cache", default="~/.cache/pyodl/pretrained", help="where pretrained general models are kept")
    p.add_argument("--no-cache", action="store_true", help="always pretrain again")
    p.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                   help="run subjects in N local processes at once (default 1); the results are the same")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="run subjects as tasks on the Ray cluster at ADDRESS (what `ray start --head` printed, or "
                        "auto) instead of local processes; its nodes need pyodl and its fleet extra")
    p.set_defaults(func=cmd_stream, command_line=None)

    p = sub.add_parser("federate", help="federated personalization with Flower: every subject a client with its own "
                                        "simulated board, FedAvg over rounds, against the centralised model",
                       description="Every subject of the dataset is a client; its windows are cut as personalize "
                                   "cuts them (the first half of each recording to train on, the rest to test) and "
                                   "stay with it. Every round the server sends the global weights; each client's "
                                   "board (a simulated STM32L496 in a process of its own, over its UART) trains "
                                   "--local-epochs epochs of the client's windows with the firmware, every layer, "
                                   "and sends its weights back with its window count; Flower's strategy aggregates. "
                                   "Each client then scores the global model on its test part and, every "
                                   "--personalize-every rounds, the personalized one (the last 2 layers fine-tuned "
                                   "on its board). The baseline is personalize's general model trained centrally "
                                   "(Adam) on the union of the clients' training windows. Flower runs the clients on "
                                   "Ray: --workers local processes, or the cluster at --ray. Needs the fleet extra "
                                   "(pip install -e '.[fleet]').")
    _add_recordings_args(p)
    p.add_argument("--subjects", default=None, help="comma-separated clients (default: every subject)")
    p.add_argument("--strategy", choices=FLEET_STRATEGIES, default="fedavg",
                   help="Flower's aggregation: fedavg (default), fedavgm (server momentum 0.9) or fedadam (server "
                        "Adam, step 0.01)")
    p.add_argument("--rounds", type=int, default=20, help="federated rounds (default 20)")
    p.add_argument("--local-epochs", type=int, default=5, metavar="E",
                   help="epochs each board trains per round on its client's windows (default 5)")
    p.add_argument("--batch", type=int, default=32, help="SGD batch (default 32)")
    p.add_argument("--lr", type=float, default=0.01, help="SGD learning rate on the boards (default 0.01)")
    p.add_argument("--personalize-epochs", type=int, default=10, metavar="N",
                   help="epochs of the last 2 layers' fine-tuning for the personalized score (default 10)")
    p.add_argument("--personalize-every", type=int, default=5, metavar="K",
                   help="score the personalized model every K rounds and after the last (default 5)")
    p.add_argument("--trainer", choices=("board", "tf"), default="board",
                   help="board: each client's firmware on its own simulated STM32L496 (default); tf: TensorFlow "
                        "trains the same batches")
    p.add_argument("--input", type=int, default=40, metavar="T", help="window length (default 40)")
    p.add_argument("--stride", type=int, default=None, help="window stride (default: half the window)")
    p.add_argument("--pretrain-epochs", type=int, default=30,
                   help="the centralised baseline's epochs (Adam, default 30)")
    p.add_argument("--workers", type=_positive_int, default=2, metavar="N",
                   help="clients trained at once, each in a Ray worker process with its board (default 2)")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="run the clients on the Ray cluster at ADDRESS (e.g. ray://head:10001 or auto) instead "
                        "of local processes; pyodl must be installed on its nodes")
    p.add_argument("--round-timeout", type=float, default=600.0, metavar="S",
                   help="seconds a round waits for its clients; a client later than that is dropped (default 600)")
    p.add_argument("--ports", default=None, metavar="URL,URL,...",
                   help="train on these boards instead of simulated ones pyodl starts, one per client in the order "
                        "of --subjects: /dev/ttyACM0 (a NUCLEO flashed by `pyodl flash` for this model's shape, "
                        "Full, SGD, --dataset-windows at least --batch) or socket://HOST:PORT (Renode's terminal, "
                        "python -m pyodl.board.board_process FIRMWARE.elf); every call sets the client's weights")
    p.add_argument("--fault", action="append", default=[], metavar="KIND:CLIENT@ROUND",
                   help="play a board failure, to see the fleet carry on: crash:3@2 kills client 3's board process "
                        "after its first step of round 2, hang:3@2 freezes it; repeatable")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights and the batches (default 0)")
    p.add_argument("--out", default="results/federate", help="results folder (default results/federate)")
    p.add_argument("--cache", default="~/.cache/pyodl/pretrained", help="where the centralised model is kept")
    p.add_argument("--no-cache", action="store_true", help="always pretrain the centralised model again")
    p.set_defaults(func=cmd_federate, command_line=None)
    return parser


class Terminated(BaseException):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that every ``with`` and ``finally`` on the way out
    (temporary build folders, boards, half-written cache entries) is unwound."""


class _Signals:
    """Ctrl-C and SIGTERM for one command: each raises at once (KeyboardInterrupt, Terminated) and is
    remembered. TensorFlow does not always let the exception through: raised while it traces a function, it
    comes out as a SystemError or AttributeError, or is printed and dropped while training goes on (seen under
    load). So the progress callback raises it again, and whatever error ends the command after a signal is
    reported as that signal."""

    def __init__(self) -> None:
        self.received: int | None = None

    def handle(self, signum: int, _frame: object) -> None:
        self.received = signum
        self.raise_again()

    def raise_again(self) -> None:
        if self.received == signal.SIGTERM:
            raise Terminated
        if self.received is not None:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Handles SIGINT and SIGTERM while the command runs, where Python can: on the main thread, and not
        for a signal the process ignores (nohup, a background job)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        previous = {sig: handler for sig, handler in previous.items() if handler is not signal.SIG_IGN}
        for sig in previous:
            signal.signal(sig, self.handle)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signals = args.signals = _Signals()
    try:
        with signals.installed():
            return int(args.func(args))
    # One line, not the traceback of whatever ran (TensorFlow's is 60 lines); every temporary folder is
    # gone by now, and results are only written once everything is computed.
    except BaseException as exc:
        if signals.received == signal.SIGTERM or isinstance(exc, Terminated):
            print(f"\npyodl {args.command}: terminated", file=sys.stderr)
            return EXIT_TERMINATED
        if signals.received is not None or isinstance(exc, KeyboardInterrupt):
            print(f"\npyodl {args.command}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        # ModelError is a ValueError; ToolchainError and OdlError are RuntimeErrors.
        if isinstance(exc, (ValueError, FileNotFoundError, RuntimeError)):
            print(f"pyodl {args.command}: error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        raise


def run() -> None:
    """The ``pyodl`` console script. After Ctrl-C or SIGTERM it leaves at once: by then every folder is
    removed and every file closed, and Python's own teardown with TensorFlow loaded takes another second."""
    status = main()
    if status in (EXIT_INTERRUPTED, EXIT_TERMINATED):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)


if __name__ == "__main__":
    run()
