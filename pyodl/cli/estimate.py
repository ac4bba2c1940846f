"""``pyodl estimate``: RAM, flash, operations and time of on-device training before any build, with a
verdict against the STM32L496."""

from __future__ import annotations

import argparse
import json
import sys

from pyodl.cli.shared import (
    BATCH,
    EXIT_MISMATCH,
    EXIT_OK,
    add_dataset_windows_arg,
    add_mode_args,
    add_model_args,
    device_model,
    load_model,
    parse_optimizer,
    trainable_count,
)
from pyodl.model.architecture import Architecture, ModelError
from pyodl.model.optimizer import OPTIMIZER_HELP
from pyodl.model.quantized import check_bits_spec, weight_bits


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("estimate", help="RAM, flash, operations and instructions of on-device training, before "
                                        "any build, with a verdict against the STM32L496",
                       description="Without building anything: the SRAM the firmware will need, section by section "
                                   "(trained parameters, gradients, optimizer state, saved activations, buffers, "
                                   "the int8 copy, the dataset region, the stack: exact to the linker's figures), "
                                   "the flash (frozen parameters, code) and the persistence slots; each layer's "
                                   "multiply-accumulates, additions, divisions and exponentials per pass; and the "
                                   "instructions and Cortex-M4 cycles per training sample, step and batch, with the "
                                   "time and energy at 80 MHz and at the 4 MHz reset clock. Ends with a verdict: "
                                   "exit status 1 when the model does not fit the STM32L496 (1 MB flash, 320 KB "
                                   "SRAM), naming by how much.")
    add_model_args(p, " (which change no estimate)")
    add_mode_args(p)
    p.add_argument("--batch", type=BATCH, default=32, help="samples per training step (default 32)")
    p.add_argument("--optimizer", default="sgd", help=OPTIMIZER_HELP)
    add_dataset_windows_arg(p)
    p.add_argument("--inference", choices=("float", "int8"), default="float",
                   help="int8: also the int8 copy's memory and one window's int8 inference (PREDICT_Q): "
                        "instructions, cycles, time and energy at 80 MHz (--json: that part only)")
    p.add_argument("--bits", default=None, metavar="BITS",
                   help="--inference int8: weight bits, 8, 4 or 2, or one per parameter layer as 8,4,4,8 "
                        "(default 8)")
    p.add_argument("--json", action="store_true", help="print the estimate as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pyodl.resources.estimate import estimate

    if args.inference == "float" and args.bits is not None:
        raise ModelError("--bits applies to --inference int8")
    bits_spec = args.bits or "8"
    check_bits_spec(bits_spec)
    optimizer = parse_optimizer(args)
    trainable = trainable_count(args.mode, args.trainable_layers)
    model = device_model(load_model(args), trainable, sys.stderr if args.json else None)
    est = estimate(model.arch, trainable, args.batch, args.model, optimizer=optimizer,
                   dataset_windows=args.dataset_windows)
    if args.inference == "int8":
        weight_bits(model.arch, bits_spec)  # a width per parameter layer of this model
    if args.json:
        if args.inference == "int8":
            print_inference(model.arch, bits_spec, as_json=True)
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
        print_inference(model.arch, bits_spec, as_json=False)
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


def print_inference(arch: Architecture, bits_spec: str, as_json: bool) -> None:
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
    print(f"  {'int8 copy in SRAM (.odl_int8, in the gradients RAM)':<52} {q.ram_bytes:>9,} B")
    for name, size in q.model_bytes.items():
        print(f"  {'model: ' + name:<52} {size:>9,} B")
    print(f"  {'model total (float32 parameters: ' + format(q.float_param_bytes, ',') + ' B)':<52} "
          f"{sum(q.model_bytes.values()):>9,} B")
    print(f"predicted per window (PREDICT_Q): {q.instructions:,.0f} instructions, {q.cycles:,.0f} Cortex-M4 cycles, "
          f"{q.milliseconds:.2f} ms and {q.millijoules:.4f} mJ at 80 MHz (fit within "
          f"{INT8_FIT['instructions']:.0%} on its calibration set)")
