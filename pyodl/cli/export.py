"""``pyodl export``: a model's generated C sources (model.h, model_params.c)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pyodl.cli.shared import (
    EXIT_OK,
    PAPER_DEFAULTS,
    TRAINABLE_LAYERS,
    add_dataset_windows_arg,
    add_model_args,
    device_model,
    load_model,
    parse_optimizer,
    positive,
)
from pyodl.model.export import PARAM_BOUND, export
from pyodl.model.optimizer import OPTIMIZER_HELP


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write firmware/generated/model.h and model_params.c for a model",
                       description="Write model.h and model_params.c for a model. BatchNormalization runs on its "
                                   "moving statistics, which stay fixed on the device (a device accumulates the "
                                   "gradient of one sample at a time, so batch statistics never exist); its gamma "
                                   "and beta train when it lies among the trained layers; in a TL build a frozen "
                                   "one right after a frozen Conv1D, DepthwiseConv1D or Dense without activation "
                                   "is folded into that layer's weights and bias. Dropout runs as the "
                                   "identity. Every unsupported layer is listed at once.")
    add_model_args(p, "")
    p.add_argument("--trainable-layers", type=TRAINABLE_LAYERS, default=None, metavar="N",
                   help="build for training only the last N Conv1D/Dense/BatchNormalization layers (TL): the "
                        "others stay const in flash (default: all layers, Full mode)")
    p.add_argument("--optimizer", default="sgd", help=OPTIMIZER_HELP)
    p.add_argument("--param-bound", type=positive(1e30), default=PARAM_BOUND, metavar="B",
                   help="the device refuses, whole, any training step or parameter write that would take a "
                        "parameter beyond +-B or to NaN (weights unchanged, gradients cleared) "
                        f"(default {PARAM_BOUND:g}; the model's own parameters must lie within it)")
    add_dataset_windows_arg(p)
    p.add_argument("--out", default="firmware/generated", help="output directory (default firmware/generated)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    optimizer = parse_optimizer(args)
    model = device_model(load_model(args), args.trainable_layers)
    for path in export(model, Path(args.out), args.trainable_layers, _export_command(args), optimizer,
                       args.param_bound, args.dataset_windows):
        print(f"wrote {path}")
    return EXIT_OK


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
