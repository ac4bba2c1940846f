"""``pyodl golden-check``: the C library and TensorFlow train on the same random batches; every weight is
compared, with a lockstep check to tell a flipped decision from a wrong computation."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pyodl.cli.shared import (
    BATCH,
    EXIT_MISMATCH,
    EXIT_OK,
    LEARNING_RATE,
    add_mode_args,
    add_model_args,
    device_model,
    load_model,
    mode_name,
    parse_optimizer,
    trainable_count,
    whole,
)
from pyodl.model.architecture import Model, ModelError
from pyodl.model.optimizer import OPTIMIZER_HELP, Optimizer
from pyodl.network.open import BACKENDS
from pyodl.resources.estimate import estimate


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("golden-check",
                       help="train the C library and TensorFlow on the same random batches and compare weights",
                       description="Train the C library and TensorFlow on the same random batches and compare every "
                                   "weight: |w_c - w_tf| <= 1e-6 + 1e-5 |w_tf|. If the two trajectories part (a ReLU "
                                   "or max-pool decision flipped on a rounding difference), each step is checked "
                                   "again from TensorFlow's weights and optimizer state (lockstep), leaving out "
                                   "the samples whose decision sat within rounding; the output says so.")
    add_model_args(p, " and of the random batches")
    add_mode_args(p)
    p.add_argument("--steps", type=whole(1, 100_000), default=100, help="training steps (default 100)")
    p.add_argument("--batch", type=BATCH, default=32, help="batch size (default 32)")
    p.add_argument("--lr", type=LEARNING_RATE, default=0.01, help="learning rate (default 0.01)")
    p.add_argument("--optimizer", default="sgd", help=OPTIMIZER_HELP + ". Lockstep restores TensorFlow's "
                   "optimizer state (velocity; Adam's m, v and step count) at every step, so momentum and Adam get "
                   "the same verdict as SGD")
    p.add_argument("--backend", choices=BACKENDS, default="host",
                   help="where the C library trains: host (this computer, through ctypes), unicorn (the firmware "
                        "on the simulated STM32L496), renode (the firmware in Renode, which must be installed) "
                        "or serial (a board running the firmware, see --port)")
    p.add_argument("--port", default=None,
                   help="serial backend: pyserial URL of the board, e.g. /dev/ttyACM0 or socket://127.0.0.1:3456 "
                        "(a Renode you started with its uart_socket macro); the renode backend needs none: it "
                        "starts Renode with the console UART on a pseudo-terminal")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    optimizer = parse_optimizer(args)
    trainable = trainable_count(args.mode, args.trainable_layers)
    model = device_model(load_model(args), trainable, sys.stderr)
    if args.backend in ("unicorn", "renode"):
        _check_the_batch_fits(model, trainable, args, optimizer)
    from pyodl.network.open import open_network  # TensorFlow (the golden model), once the model is known good
    from pyodl.reference import golden
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
        reference = golden.train(model, windows, labels, args.lr, trainable, optimizer)
        t_tf = time.perf_counter() - t0 - t_c
        atol, rtol = golden.tolerance(optimizer, args.lr, args.steps)
        diffs = golden.compare(model, c_params, reference.params, atol, rtol)
        trajectory_ok = all(d.ok for d in diffs)
        if not trajectory_ok:
            # Told apart: a decision that flipped on a rounding difference, or a wrong computation.
            lockstep, left_out = golden.lockstep(net, model, windows, labels, args.lr, trainable, optimizer)
    # Lockstep starts every step from TensorFlow's whole state (weights, optimizer slots, step count) on both
    # sides and compares weights and slots: SGD, momentum and Adam get the same verdict from it.
    ok = trajectory_ok or bool(lockstep is not None and (lockstep <= 1.0).all())

    if args.json:
        print(json.dumps({
            "model": args.model, "input": model.arch.input_len, "mode": mode_name(trainable),
            "trainable_layers": trainable,
            "steps": args.steps, "batch": args.batch, "lr": args.lr, "optimizer": optimizer.describe(),
            "backend": args.backend,
            "tolerance": {"atol": atol, "rtol": rtol},
            "layers": [d.__dict__ | {"ok": d.ok} for d in diffs],
            "final_loss": {"c": c_losses[-1], "tf": float(reference.losses[-1])}, "trajectory_ok": trajectory_ok,
            "lockstep_worst_ratio": None if lockstep is None else float(lockstep.max()),
            "lockstep_samples_at_a_kink": left_out, "ok": ok,
        }, indent=2))
    else:
        print(f"golden check: {args.model} model, input ({model.arch.input_len}, {model.arch.input_ch}), "
              f"{mode_name(trainable)} mode" + (f" (last {trainable} layers)" if trainable else "") +
              f", {args.steps} steps of {optimizer.describe()}, batch {args.batch}, lr {args.lr}, "
              f"backend {args.backend}")
        print(f"tolerance |w_c - w_tf| <= {atol:g} + {rtol:g} * |w_tf|" + (
            f" (Adam: {golden.ATOL:g} + {golden.ADAM_STEP_ATOL:g} * lr * steps, since its step does not scale "
            "with the gradient)" if optimizer.kind == "adam" else ""))
        print(f"{'layer':<16} {'max abs diff':>13} {'max rel diff':>13} {'of tolerance':>13}  result")
        for d in diffs:
            print(f"{d.name:<16} {d.max_abs:>13.3e} {d.max_rel:>13.3e} {d.worst_ratio:>12.2%}  "
                  f"{'ok' if d.ok else 'FAIL'}")
        print(f"final loss: C {c_losses[-1]:.6f}, TF {reference.losses[-1]:.6f}; "
              f"time: C build+train {t_c:.1f} s, TF {t_tf:.1f} s")
        if lockstep is not None:
            worst = int(np.argmax(lockstep))
            print(f"the trajectories parted; lockstep check (each of the {args.steps} steps from TensorFlow's "
                  f"weights and optimizer state, weights and slots compared): worst {lockstep.max():.2%} of the "
                  f"tolerance, at step {worst + 1}"
                  + (f"; {left_out} samples whose ReLU or max-pool decision sat within rounding (relative "
                     f"{golden.KINK_RELATIVE:g}) were left out of their step" if left_out else ""))
        if trajectory_ok:
            print("PASS")
        elif ok:
            print("PASS (lockstep): every step computes what TensorFlow computes; the trajectories parted where "
                  "a ReLU or max-pool decision flipped on a rounding difference")
        else:
            print("FAIL: weights outside the tolerance" + (" even from shared weights" if lockstep is not None
                                                           else ""))
    return EXIT_OK if ok else EXIT_MISMATCH


def _check_the_batch_fits(model: Model, trainable: int | None, args: argparse.Namespace,
                          optimizer: Optimizer) -> None:
    """On a simulated board the golden check stores each batch's windows in the firmware's dataset region
    (.odl_dataset): the estimator, exact to the linker, says before any build whether --batch fits, and which
    batch would."""
    fitted = estimate(model.arch, trainable, args.batch, args.model, optimizer=optimizer, dataset_windows=args.batch)
    if fitted.ram_margin >= 0:
        return
    bare = estimate(model.arch, trainable, args.batch, args.model, optimizer=optimizer)
    per_window = (fitted.ram_total - bare.ram_total) / args.batch
    room = max(int(bare.ram_margin // per_window), 0) if per_window else 0
    region = fitted.ram_total - bare.ram_total
    raise ModelError(
        f"--batch {args.batch} does not fit the board: the golden check stores a batch's windows in the dataset "
        f"region (.odl_dataset, {region:,} B for {args.batch} windows), and with it the firmware needs "
        f"{fitted.ram_total:,} B of the STM32L496's {fitted.sram_bytes:,} B of SRAM ({-fitted.ram_margin:,} B "
        "over); " + (f"--batch {room} fits" if room >= 1 else "no batch fits beside this model") +
        " (`pyodl estimate` with --dataset-windows N predicts it)")
