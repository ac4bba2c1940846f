"""``pyodl federate``: federated personalization with Flower, every subject a client with its own simulated
board."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from pyodl.cli.experiment_options import (
    add_recordings_args,
    load_dataset,
    parse_subjects,
    progress_bars,
    write_results,
)
from pyodl.cli.shared import BATCH, LEARNING_RATE, SEED, WINDOW, WORKERS, positive, whole
from pyodl.experiments.fleet import STRATEGIES as FLEET_STRATEGIES
from pyodl.model.architecture import ModelError


def add_parser(sub: argparse._SubParsersAction) -> None:
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
    add_recordings_args(p)
    p.add_argument("--subjects", default=None, help="comma-separated clients (default: every subject)")
    p.add_argument("--strategy", choices=FLEET_STRATEGIES, default="fedavg",
                   help="Flower's aggregation: fedavg (default), fedavgm (server momentum 0.9) or fedadam (server "
                        "Adam, step 0.01)")
    p.add_argument("--rounds", type=whole(), default=20, help="federated rounds (default 20)")
    p.add_argument("--local-epochs", type=whole(), default=5, metavar="E",
                   help="epochs each board trains per round on its client's windows (default 5)")
    p.add_argument("--batch", type=BATCH, default=32, help="SGD batch (default 32)")
    p.add_argument("--lr", type=LEARNING_RATE, default=0.01, help="SGD learning rate on the boards (default 0.01)")
    p.add_argument("--personalize-epochs", type=whole(), default=10, metavar="N",
                   help="epochs of the last 2 layers' fine-tuning for the personalized score (default 10)")
    p.add_argument("--personalize-every", type=whole(), default=5, metavar="K",
                   help="score the personalized model every K rounds and after the last (default 5)")
    p.add_argument("--trainer", choices=("board", "tf"), default="board",
                   help="board: each client's firmware on its own simulated STM32L496 (default); tf: TensorFlow "
                        "trains the same batches")
    p.add_argument("--input", type=WINDOW, default=40, metavar="T", help="window length (default 40)")
    p.add_argument("--stride", type=WINDOW, default=None, help="window stride (default: half the window)")
    p.add_argument("--pretrain-epochs", type=whole(), default=30,
                   help="the centralised baseline's epochs (Adam, default 30)")
    p.add_argument("--workers", type=WORKERS, default=2, metavar="N",
                   help="clients trained at once, each in a Ray worker process with its board (default 2)")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="run the clients on the Ray cluster at ADDRESS (e.g. ray://head:10001 or auto) instead "
                        "of local processes; pyodl must be installed on its nodes")
    p.add_argument("--round-timeout", type=positive(86_400.0), default=600.0, metavar="S",
                   help="seconds a round waits for its clients; a client later than that is dropped (default 600)")
    p.add_argument("--ports", default=None, metavar="URL,URL,...",
                   help="train on these boards instead of simulated ones pyodl starts, one per client in the order "
                        "of --subjects: /dev/ttyACM0 (a NUCLEO flashed by `pyodl flash` for this model's shape, "
                        "Full, SGD, --dataset-windows at least --batch) or socket://HOST:PORT (Renode's terminal, "
                        "python -m pyodl.board.board_process FIRMWARE.elf); every call sets the client's weights")
    p.add_argument("--fault", action="append", default=[], metavar="KIND:CLIENT@ROUND",
                   help="play a board failure, to see the fleet carry on: crash:3@2 kills client 3's board process "
                        "after its first step of round 2, hang:3@2 freezes it; repeatable")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the initial weights and the batches (default 0)")
    p.add_argument("--out", default="results/federate", help="results folder (default results/federate)")
    p.add_argument("--cache", default="~/.cache/pyodl/pretrained", help="where the centralised model is kept")
    p.add_argument("--no-cache", action="store_true", help="always pretrain the centralised model again")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Not TensorFlow, Flower or Ray: every argument and the dataset are checked before they are loaded.
    from pyodl.experiments import federate as fed

    chosen = parse_subjects(args.subjects)
    try:
        faults = tuple(fed.Fault.parse(f) for f in args.fault)
        stride = args.input // 2 if args.stride is None else args.stride
        cfg = fed.Config(input_len=args.input, stride=stride, rounds=args.rounds,
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
    recordings, classes, name, _ = load_dataset(args.dataset, args.rate)
    subjects = chosen if chosen is not None else sorted({r.subject for r in recordings})
    cache = None if args.no_cache else Path(args.cache).expanduser()
    with progress_bars("round", args.signals) as progress:
        report = fed.run(recordings, classes, subjects, cfg, name, cache, progress)
    return write_results(args, report, fed.plot, "rounds.png")
