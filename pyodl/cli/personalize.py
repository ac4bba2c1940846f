"""``pyodl personalize``: leave-one-subject-out personalization (the paper's Table II), trained by the
firmware on the simulated board."""

from __future__ import annotations

import argparse
from pathlib import Path

from pyodl.cli.experiment_options import (
    add_recordings_args,
    add_subject_run_args,
    load_dataset,
    parse_subjects,
    pick_channels,
    progress_bars,
    subject_workers,
    write_results,
)
from pyodl.cli.shared import (
    LEARNING_RATE,
    MAX_WINDOW,
    SECONDS,
    SEED,
    TRAINABLE_LAYERS,
    WINDOW,
    model_file,
    parse_optimizer,
    whole,
)
from pyodl.data.windows import Normalizer
from pyodl.experiments.checkpoint import Checkpoint
from pyodl.experiments.trainer import TRAINERS
from pyodl.model.architecture import ModelError
from pyodl.model.fold import foldable
from pyodl.model.keras_file import input_shape
from pyodl.model.optimizer import OPTIMIZER_HELP
from pyodl.model.quantized import check_bits_spec, weight_bits


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("personalize", help="leave-one-subject-out personalization (the paper's Table II): TL and "
                                           "Full trained by the firmware on the simulated board",
                       description="For each held-out subject: a general model is pretrained in TensorFlow on the "
                                   "other subjects' windows (Adam; cached), or --model is used as is; the subject's "
                                   "windows are split by --split into a personalization part and a test part; then "
                                   "No Pers. (the general model), TL (its last --trainable-layers layers trained on "
                                   "the personalization part), Full (every layer, after --warmup-epochs of the last "
                                   "one) and No Pretrain (every layer from random weights) are trained by --trainer "
                                   "and scored on the test part (macro F1, accuracy), each also quantized to "
                                   "int8 on the device (--quantize). Writes results.md, results.json, "
                                   "confusion.png and losses.png to --out (and adaptive.png when the models have a "
                                   "cheap mode), each subject's result to --out/subjects/ as it is done.")
    add_recordings_args(p)
    p.add_argument("--subjects", default=None,
                   help="comma-separated held-out subjects (default: every subject of the data, each held out in "
                        "turn)")
    p.add_argument("--model", default=None, metavar="MODEL.keras",
                   help="your general model (default: the paper's CNN, pretrained here): used as is, with "
                        "MODEL.norm.json's normalisation if it is beside it, or with --pretrain trained from "
                        "scratch on the other subjects")
    p.add_argument("--pretrain", action="store_true", help="with --model: pretrain its architecture here")
    p.add_argument("--trainable-layers", type=TRAINABLE_LAYERS, default=None, metavar="N",
                   help="TL trains the last N Conv1D/Dense/BatchNormalization layers (default: 2 for the paper's "
                        "model, the Dense head of --model)")
    p.add_argument("--channels", default=None,
                   help="channels to use, as indices or names, e.g. 0,1,2 or ax,ay,az (default: the first 3, "
                        "the watch's accelerometer, or as many as --model takes)")
    p.add_argument("--split", choices=("time", "recording"), default="time",
                   help="time: each recording's first half personalizes, its second half after --gap tests "
                        "(default); recording: whole recordings, so no test window comes from a bout trained on "
                        "(where the data names the wrist, as the watch set does, every activity personalizes on the "
                        "same one and tests on the other: README says what each measures)")
    p.add_argument("--gap", type=SECONDS, default=None, metavar="SECONDS",
                   help="--split time: seconds left out after the cut, so no test window sits right after the "
                        "trained ones (default: one window, 2 s at --input 40)")
    p.add_argument("--input", type=WINDOW, default=None,
                   help="window length at 20 Hz (default 40, or --model's input length)")
    p.add_argument("--stride", type=WINDOW, default=None, help="window stride (default: half the window)")
    p.add_argument("--all-channels", action="store_true",
                   help="use every channel (default: the first 3, the accelerometer, like the paper)")
    p.add_argument("--epochs", type=whole(), default=20, help="personalization epochs (default 20)")
    p.add_argument("--lr", type=LEARNING_RATE, default=0.01, help="personalization learning rate (default 0.01)")
    p.add_argument("--optimizer", default="sgd", help=OPTIMIZER_HELP + " (the general model is pretrained with Adam "
                   "in TensorFlow either way)")
    p.add_argument("--warmup-epochs", type=whole(0), default=5,
                   help="Full: epochs training only the last layer first (default 5)")
    p.add_argument("--pretrain-epochs", type=whole(), default=30, help="general model epochs (Adam, default 30)")
    p.add_argument("--no-pretrain-epochs", type=whole(), default=30, metavar="E",
                   help="No Pretrain's own budget, at most (default 30)")
    p.add_argument("--no-pretrain-optimizer", default="adam", metavar="OPTIMIZER",
                   help="No Pretrain's optimizer, as --optimizer (default adam: from random weights SGD at lr 0.01 "
                        "needs about 200 epochs, Adam at lr 0.003 scores better after 30)")
    p.add_argument("--no-pretrain-lr", type=LEARNING_RATE, default=0.003,
                   help="No Pretrain's learning rate (default 0.003)")
    p.add_argument("--no-pretrain-patience", type=whole(0), default=10, metavar="P",
                   help="No Pretrain stops once its training loss has not fallen 1%% below its best for P epochs, the "
                        "same rule for every trainer (default 10; 0: always --no-pretrain-epochs; losses.png shows "
                        "the curves)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of initial weights and shuffling (default 0)")
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
    p.add_argument("--adaptive-length", type=whole(0, MAX_WINDOW), default=None, metavar="ROWS",
                   help="adaptive inference of the 8-bit models: a cheap mode on the window's newest ROWS rows, the "
                        "whole window when its confidence is low; results.md and adaptive.png give macro F1 against "
                        "instructions per window for each threshold (default: half the window; 0: none)")
    p.add_argument("--out", default="results/personalize",
                   help="results folder (default results/personalize); each subject's result is saved in its "
                        "subjects/ folder as soon as it is computed")
    p.add_argument("--resume", action="store_true",
                   help="take up the subjects an interrupted run with the same options and data saved in --out, "
                        "and compute only the others")
    add_subject_run_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Not TensorFlow: every argument and the dataset are checked before it is loaded.
    from pyodl.experiments import personalize as pers

    chosen = parse_subjects(args.subjects)
    if args.model is None and args.pretrain:
        raise ModelError("--pretrain applies to --model (the paper's model is always pretrained here)")
    optimizer = parse_optimizer(args)
    no_pretrain_optimizer = parse_optimizer(args, "no_pretrain_optimizer")
    if args.gap is not None and args.split != "time":
        raise ModelError("--gap applies to --split time")
    model_path = None if args.model is None else model_file(args.model, "--model")
    if args.all_channels and args.channels:
        raise ModelError("--all-channels and --channels exclude each other")
    if ((args.workers or 1) > 1 or args.ray) and args.trainer == "serial":
        raise ModelError("--workers N and --ray need a board per worker: --trainer serial trains on the one board at "
                         "--port (use --workers 1)")
    if args.no_quantize and args.quantize:
        raise ModelError("--quantize and --no-quantize exclude each other")
    quantize = () if args.no_quantize else tuple(args.quantize or ("8", "4"))
    for spec in quantize:
        check_bits_spec(spec)
    recordings, classes, name, channel_names = load_dataset(args.dataset, args.rate)
    subjects = chosen if chosen is not None else sorted({r.subject for r in recordings})
    setup: list[str] = []
    general = pers.GeneralModel()
    input_len = 40 if args.input is None else args.input
    if model_path is None:
        count = len(channel_names) if args.all_channels else 3
        channels = pick_channels(args.channels, channel_names, count, "all of them" if args.all_channels else
                                 "the first 3, the accelerometer, like the paper", setup)
        setup.append("general model: the paper's CNN, pretrained here on the other subjects")
    else:
        norm_file = model_path.with_suffix(".norm.json")
        norm = Normalizer.load(norm_file) if norm_file.is_file() and not args.pretrain else None
        shape = input_shape(model_path)
        if shape is not None and len(shape) == 2 and None not in shape:
            # The data against the model's input in milliseconds, rather than after TensorFlow has loaded.
            early_len = int(shape[0]) if args.input is None else args.input
            early = pers.Config(input_len=early_len, stride=early_len // 2 if args.stride is None else args.stride,
                                channels=pick_channels(args.channels, channel_names, int(shape[1]), "", []),
                                split=args.split)
            pers.check_data(recordings, subjects, early,
                            pers.fitted_on_others(model_path.name, args.pretrain, norm is not None), name)
        from pyodl.model.keras_io import load  # TensorFlow, now that the arguments are known good

        user = load(model_path)
        input_len = user.arch.input_len if args.input is None else args.input
        channels = pick_channels(args.channels, channel_names, user.arch.input_ch,
                                 f"the first {user.arch.input_ch}, as many as {model_path.name} takes", setup)
        general = pers.GeneralModel(model_path.name, user, args.pretrain, norm)
        how = "its architecture pretrained here on the other subjects" if args.pretrain else (
            f"used as is, inputs normalised as {norm_file.name} says" if norm else
            f"used as is, inputs normalised with the other subjects' statistics (no {norm_file.name} beside it)")
        setup.append(f"general model: {model_path.name}, {how}")
        setup += [f"note: {note}" for note in user.notes]
    stride = input_len // 2 if args.stride is None else args.stride
    cfg = pers.Config(input_len=input_len, stride=stride, channels=channels,
                      epochs=args.epochs, warmup_epochs=args.warmup_epochs, pretrain_epochs=args.pretrain_epochs,
                      seed=args.seed, trainer=args.trainer, split=args.split, trainable_layers=args.trainable_layers,
                      no_pretrain_epochs=args.no_pretrain_epochs, no_pretrain_patience=args.no_pretrain_patience,
                      no_pretrain_optimizer=no_pretrain_optimizer.describe(),
                      no_pretrain_learning_rate=args.no_pretrain_lr, gap_seconds=args.gap,
                      learning_rate=args.lr,
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
    setup.append(f"split: {args.split} (--split to choose; README says what each split measures)")
    cache = None if args.no_cache else Path(args.cache).expanduser()
    with progress_bars("epoch", args.signals) as progress:
        report = pers.run(recordings, classes, subjects, cfg, name, cache, progress, general, setup,
                          subject_workers(args.workers, args.trainer, len(subjects)), args.ray,
                          Checkpoint(Path(args.out) / "subjects", args.resume))
    return write_results(args, report, pers.plot, "confusion.png, losses.png"
                          + (", adaptive.png" if report.adaptive_curve("TL") else ""))
