"""``pyodl stream``: a held-out subject's windows arrive one at a time; the device chooses which to ask a
teacher about, learns from them and watches for a drift."""

from __future__ import annotations

import argparse
from pathlib import Path

from pyodl.cli.experiment_options import (
    add_recordings_args,
    add_subject_run_args,
    load_dataset,
    parse_subjects,
    progress_bars,
    subject_workers,
    write_results,
)
from pyodl.cli.shared import (
    BATCH,
    LEARNING_RATE,
    MAX_BATCH,
    SEED,
    TRAINABLE_LAYERS,
    WINDOW,
    Bounded,
    whole,
)
from pyodl.model.architecture import ModelError

# pyodl stream --sweep: the operating points besides the defaults (AGREEMENT 0.5, BUDGET 0.3).
SWEEP_TARGETS = (0.2, 0.35, 0.65)
SWEEP_BUDGETS = (0.1, 0.2, 0.45, 0.6)
SHARE = Bounded(float, 0.0, 1.0)  # a rate or a confidence, 0 to 1


def add_parser(sub: argparse._SubParsersAction) -> None:
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
    add_recordings_args(p)
    p.add_argument("--subjects", default=None, help="comma-separated held-out subjects (default: the first 3)")
    p.add_argument("--drift", choices=("none", "side", "rotation", "subject", "new-class"), default="none",
                   help="halfway through the stream: none (default); side: the other arm (watch data); rotation: "
                        "the sensor turned a quarter turn about z; subject: the next subject's windows (the "
                        "general model is pretrained without either); new-class: "
                        "the general model is pretrained without --new-class, whose windows come last")
    p.add_argument("--new-class", type=whole(0, 1000), default=0, metavar="K",
                   help="--drift new-class: the class index the general model never sees (default 0)")
    p.add_argument("--teacher", default="oracle",
                   help="who answers a query: oracle (the true label, default), general (the general model in "
                        "TensorFlow, a phone's copy), wide (a ~9x bigger CNN pretrained here on the other "
                        "subjects, cached alike) or keras:PATH (your Keras model, used as is, taking the same "
                        "normalised windows)")
    p.add_argument("--trainer", choices=("board", "tf"), default="board",
                   help="board: the firmware on the simulated STM32L496 decides and trains (default); tf: the same "
                        "decisions in Python, TensorFlow trains")
    p.add_argument("--input", type=WINDOW, default=40, metavar="T", help="window length (default 40)")
    p.add_argument("--stride", type=WINDOW, default=None, help="window stride (default: half the window)")
    p.add_argument("--trainable-layers", type=TRAINABLE_LAYERS, default=None, metavar="N",
                   help="layers the device trains, counted from the output (default 2, the paper's TL)")
    p.add_argument("--replay", type=whole(1, MAX_BATCH), default=256, metavar="N",
                   help="the device's replay buffer of labelled windows, in its dataset region (default 256)")
    p.add_argument("--batch", type=BATCH, default=16, help="windows drawn from the buffer per step (default 16)")
    p.add_argument("--train-every", type=whole(), default=4, metavar="K",
                   help="stream windows between training steps, queried or not (default 4)")
    p.add_argument("--lr", type=LEARNING_RATE, default=0.01, help="SGD learning rate (default 0.01)")
    p.add_argument("--drift-lr", type=LEARNING_RATE, default=0.03,
                   help="learning rate while a drift is detected (default 0.03)")
    p.add_argument("--budget", type=SHARE, default=0.3, help="BUDGET's target query rate (default 0.3)")
    p.add_argument("--disagree-target", type=SHARE, default=0.5,
                   help="AGREEMENT's target rate of teacher disagreement among queries (default 0.5)")
    p.add_argument("--self-label", type=SHARE, default=0.9, metavar="C",
                   help="the '+ self-labels' runs: an unqueried window predicted with at least this confidence joins "
                        "the replay buffer with the device's own class (default 0.9)")
    p.add_argument("--explore", type=SHARE, default=0.1, metavar="E",
                   help="the '+ exploration' runs: this share of the windows is queried at random whatever the "
                        "device's confidence, within BUDGET's rate (default 0.1)")
    p.add_argument("--repeats", type=whole(1, 100), default=1, metavar="N",
                   help="run each learning run N times with other replay and random draws (same general model); "
                        "means over subjects and repeats (default 1)")
    p.add_argument("--max-windows", type=whole(1, 10_000_000), default=None, metavar="N",
                   help="cut each stream to N windows")
    p.add_argument("--sweep", action="store_true",
                   help="more operating points for pruning.png's curves: AGREEMENT at disagreement targets "
                        f"{', '.join(map(str, SWEEP_TARGETS))} (each with random queries at its rate) and BUDGET at "
                        f"rates {', '.join(map(str, SWEEP_BUDGETS))} (each also with exploration)")
    p.add_argument("--pretrain-epochs", type=whole(0), default=30, help="general model epochs (Adam, default 30)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the general model and the draws (default 0)")
    p.add_argument("--out", default="results/stream", help="results folder (default results/stream)")
    add_subject_run_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Not TensorFlow: every argument and the dataset are checked before it is loaded.
    from pyodl.experiments import stream as st

    chosen = parse_subjects(args.subjects)
    if args.teacher.startswith("keras:") and not Path(args.teacher.removeprefix("keras:")).is_file():
        raise ModelError(f"--teacher {args.teacher}: no such file")
    try:
        stride = args.input // 2 if args.stride is None else args.stride
        cfg = st.Config(input_len=args.input, stride=stride, seed=args.seed,
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
    recordings, classes, name, _ = load_dataset(args.dataset, args.rate)
    subjects = chosen if chosen is not None else sorted({r.subject for r in recordings})[:3]
    cache = None if args.no_cache else Path(args.cache).expanduser()
    with progress_bars("window", args.signals) as progress:
        report = st.run(recordings, classes, subjects, cfg, name, cache, progress,
                        subject_workers(args.workers, args.trainer, len(subjects)), args.ray)
    return write_results(args, report, st.plot, "stream.png, pruning.png")
