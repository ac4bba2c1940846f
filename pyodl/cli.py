"""The ``pyodl`` command line."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pyodl.backends import BACKENDS
from pyodl.model import PAPER_INPUT_LENGTHS, Model, ModelError, glorot_params, paper_architecture

EXIT_OK, EXIT_MISMATCH, EXIT_ERROR = 0, 1, 2


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
    from pyodl.keras_model import load

    return load(Path(args.model))


def _trainable(mode: str, trainable_layers: int | None) -> int | None:
    """None for Full mode; the number of last parameter layers for TL (default 2: the paper's TL)."""
    if mode == "full":
        if trainable_layers is not None:
            raise ModelError("--trainable-layers applies to --mode tl only")
        return None
    return 2 if trainable_layers is None else trainable_layers


def _export_command(args: argparse.Namespace) -> str:
    parts = ["pyodl export", args.model]
    if args.model == "paper":
        parts += [f"--{key} {getattr(args, key)}" for key in PAPER_DEFAULTS]
    if args.trainable_layers is not None:
        parts.append(f"--trainable-layers {args.trainable_layers}")
    return " ".join(parts)


def cmd_export(args: argparse.Namespace) -> int:
    from pyodl.export import export

    model = _load_model(args)
    for path in export(model, Path(args.out), args.trainable_layers, _export_command(args)):
        print(f"wrote {path}")
    return EXIT_OK


def cmd_golden_check(args: argparse.Namespace) -> int:
    from pyodl import golden
    from pyodl.backends import open_trainer

    if args.steps < 1 or args.batch < 1:
        raise ModelError("--steps and --batch must be >= 1")
    if not (np.isfinite(args.lr) and args.lr > 0):
        raise ModelError("--lr must be a finite number > 0")
    model = _load_model(args)
    trainable = _trainable(args.mode, args.trainable_layers)
    windows, labels = golden.random_batches(model.arch, args.steps, args.batch, (args.seed or 0) + 1)

    t0 = time.perf_counter()
    # A TL build keeps the frozen layers const, as the device does: the check covers that build.
    with tempfile.TemporaryDirectory(prefix="pyodl-golden-") as tmp, \
            open_trainer(args.backend, model, Path(tmp), trainable, args.port) as net:
        c_losses = [net.train_step(x, y, args.lr) for x, y in zip(windows, labels, strict=True)]
        c_params = net.get_params()
    t_c = time.perf_counter() - t0
    run = golden.train(model, windows, labels, args.lr, trainable)
    t_tf = time.perf_counter() - t0 - t_c
    diffs = golden.compare(model, c_params, run.params)
    ok = all(d.ok for d in diffs)

    if args.json:
        print(json.dumps({
            "model": args.model, "input": model.arch.input_len, "mode": args.mode, "trainable_layers": trainable,
            "steps": args.steps, "batch": args.batch, "lr": args.lr, "backend": args.backend,
            "tolerance": {"atol": golden.ATOL, "rtol": golden.RTOL},
            "layers": [d.__dict__ | {"ok": d.ok} for d in diffs],
            "final_loss": {"c": c_losses[-1], "tf": float(run.losses[-1])}, "ok": ok,
        }, indent=2))
    else:
        print(f"golden check: {args.model} model, input ({model.arch.input_len}, {model.arch.input_ch}), "
              f"{args.mode} mode" + (f" (last {trainable} layers)" if trainable else "") +
              f", {args.steps} SGD steps of batch {args.batch}, lr {args.lr}, backend {args.backend}")
        print(f"tolerance |w_c - w_tf| <= {golden.ATOL:g} + {golden.RTOL:g} * |w_tf|")
        print(f"{'layer':<16} {'max abs diff':>13} {'max rel diff':>13} {'of tolerance':>13}  result")
        for d in diffs:
            print(f"{d.name:<16} {d.max_abs:>13.3e} {d.max_rel:>13.3e} {d.worst_ratio:>12.2%}  "
                  f"{'ok' if d.ok else 'FAIL'}")
        print(f"final loss: C {c_losses[-1]:.6f}, TF {run.losses[-1]:.6f}; "
              f"time: C build+train {t_c:.1f} s, TF {t_tf:.1f} s")
        print("PASS" if ok else "FAIL: weights outside the tolerance")
    return EXIT_OK if ok else EXIT_MISMATCH


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", default="paper",
                   help="'paper' (the seed paper's 1-D CNN, default) or a Keras 3 .keras file")
    p.add_argument("--input", type=int, default=None, metavar="T",
                   help=f"paper model input length (paper: {', '.join(map(str, PAPER_INPUT_LENGTHS))}; default 40)")
    p.add_argument("--channels", type=int, default=None, help="paper model input channels (default 3)")
    p.add_argument("--classes", type=int, default=None, help="paper model classes (default 6)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the paper model's initial weights and of golden-check's batches (default 0)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyodl", description="On-device personalization of 1-D CNNs for HAR.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("export", help="write firmware/generated/model.h and model_params.c for a model")
    _add_model_args(p)
    p.add_argument("--trainable-layers", type=int, default=None, metavar="N",
                   help="build for training only the last N Conv1D/Dense layers (TL): the others stay const "
                        "in flash (default: all layers, Full mode)")
    p.add_argument("--out", default="firmware/generated", help="output directory (default firmware/generated)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("golden-check",
                       help="train the C library and TensorFlow on the same random batches and compare weights")
    _add_model_args(p)
    p.add_argument("--mode", choices=("full", "tl"), default="full",
                   help="full: train all layers; tl: only the last --trainable-layers (default 2)")
    p.add_argument("--trainable-layers", type=int, default=None, metavar="N",
                   help="with --mode tl: how many of the last Conv1D/Dense layers train (default 2)")
    p.add_argument("--steps", type=int, default=100, help="SGD steps (default 100)")
    p.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
    p.add_argument("--lr", type=float, default=0.01, help="learning rate (default 0.01)")
    p.add_argument("--backend", choices=BACKENDS, default="host",
                   help="where the C library trains: host (this computer, through ctypes), unicorn (the firmware "
                        "on the simulated STM32L496), renode (the firmware in Renode, which must be installed) "
                        "or serial (a board running the firmware, see --port)")
    p.add_argument("--port", default=None,
                   help="serial backend: pyserial URL of the board, e.g. /dev/ttyACM0 or socket://127.0.0.1:3456; "
                        "renode backend: the TCP port Renode opens for USART2 (default 3456)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_golden_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    # ModelError is a ValueError; ToolchainError and OdlError are RuntimeErrors.
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"pyodl {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
