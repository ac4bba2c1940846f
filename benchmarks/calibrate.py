"""Fit the cost models of pyodl/resources/estimate.py (COEFFICIENTS: instructions, CYCLE_COEFFICIENTS: the
board's modelled Cortex-M4 cycles) to the firmware on the simulated board.

    .venv/bin/python benchmarks/calibrate.py [--random 32] [--wide 32] [--seed 100]
    .venv/bin/python benchmarks/calibrate.py --int8 [--random 24] [--wide 24] [--seed 200]

Measures the paper's model at every T and mode plus random architectures
(pyodl.model.architecture.random_architecture, and as many with strided, dilated and padded windows and
the HAR activations),
then least-squares fits the per-sample and per-step coefficients of instructions and of cycles and prints
them with the worst relative error of each fit; the step coefficients of every optimizer (STEP_COEFFICIENTS,
STEP_CYCLE_COEFFICIENTS) come from the paper's model built with each. Validation on other architectures is
in tests/resources/test_estimate.py and `pyodl bench`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from pyodl.model.architecture import PAPER_INPUT_LENGTHS, Model, glorot_params, paper_model, random_architecture
from pyodl.model.optimizer import Optimizer
from pyodl.resources.bench import measure
from pyodl.resources.estimate import COEFFICIENTS, estimate, features
from pyodl.toolchain.firmware import FirmwareBuilder

SAMPLE_KEYS = tuple(COEFFICIENTS)  # the features both cost models share, in their printed order


OPTIMIZERS = ("sgd", "sgd:momentum=0.9", "sgd:momentum=0.9,nesterov", "adam")


def _fit_relative(a: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least squares minimising the relative error, every coefficient >= 0 (a cost; features that move
    together, such as a ReLU's elements and its layer's outputs, would otherwise trade signs and predict
    nonsense outside the calibration set); the coefficients and each point's relative error."""
    from scipy.optimize import nnls

    coef, _ = nnls(a / y[:, None], np.ones_like(y))
    return coef, np.abs(a @ coef - y) / y


def _print_fit(name: str, keys: tuple[str, ...], a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fit ``y`` on the features ``a`` and print the coefficients as the Python dict to paste; returns each
    point's relative error."""
    coef, rel = _fit_relative(a, y)
    print(f"{name} = {{")
    for key, value in zip(keys, coef, strict=True):
        print(f'    "{key}": {value:.3f},')
    print(f"}}  # worst relative error of the fit: {rel.max():.2%} (mean {rel.mean():.2%}, {len(y)} points)")
    return rel


def fit_steps(builder: FirmwareBuilder, work: Path) -> None:
    """Instructions and cycles per trained parameter and per step of each optimizer's SGD_STEP, fitted on the
    paper's model in Full and TL builds at every input length."""
    fits: dict[str, list[str]] = {"STEP_COEFFICIENTS": [], "STEP_CYCLE_COEFFICIENTS": []}
    worst = 0.0
    for text in OPTIMIZERS:
        optimizer = Optimizer.parse(text)
        points = []
        for t in PAPER_INPUT_LENGTHS:
            for tl in (None, 2):
                model = paper_model(t, 0)
                m = measure(model, tl, builder, work / f"{optimizer.slots}-{t}-{tl}", batch=1, optimizer=optimizer)
                n_trained = len(model.arch.param_layers) if tl is None else tl
                params = sum(model.arch.layers[i].param_count for i in model.arch.param_layers[-n_trained:])
                points.append((params, m.instructions_per_step, m.cycles_per_step))
        p = np.array(points, dtype=float)
        for name, column in (("STEP_COEFFICIENTS", 1), ("STEP_CYCLE_COEFFICIENTS", 2)):
            coef, rel = _fit_relative(np.c_[p[:, 0], np.ones(len(p))], p[:, column])
            worst = max(worst, float(rel.max()))
            fits[name].append(f'    "{optimizer.c_kind}": ({coef[0]:.3f}, {coef[1]:.1f}),')
    for name, lines in fits.items():
        print(f"{name} = {{", *lines, "}", sep="\n")
    print(f"worst relative error of the step fits: {worst:.2%}")


def fit_int8(random: int, wide: int, seed: int) -> None:
    """INT8_COEFFICIENTS and INT8_CYCLE_COEFFICIENTS of pyodl/resources/inference.py: PREDICT_Q on the paper's
    model at every T and on random architectures, each with all-8-bit weights and a random mix of widths."""
    from pyodl.model.architecture import Kind
    from pyodl.resources.inference import INT8_COEFFICIENTS, int8_features, measure_inference

    keys = tuple(INT8_COEFFICIENTS)
    rng = np.random.default_rng(seed)
    models = [paper_model(t, 0) for t in PAPER_INPUT_LENGTHS]
    while len(models) < len(PAPER_INPUT_LENGTHS) + random + wide:
        i = len(models)
        arch = random_architecture(rng, f"int8cal{i}", wide=i >= len(PAPER_INPUT_LENGTHS) + random)
        if estimate(arch).fits:
            models.append(Model(arch, glorot_params(arch, i)))
    rows, ys, cycles = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        builder = FirmwareBuilder(Path(tmp) / "build")
        for k, model in enumerate(models):
            layers = [model.arch.layers[i] for i in model.arch.param_layers]
            mixed = ",".join("8" if layer.kind is Kind.BATCHNORM else str(rng.choice([8, 4, 2])) for layer in layers)
            for m in measure_inference(model, ["8", mixed], builder, Path(tmp) / f"q{k}", windows=4):
                f = int8_features(model.arch, m.bits)
                rows.append([f[key] for key in keys])
                ys.append(m.int8_instructions)
                cycles.append(m.int8_cycles)
                print(f"{model.arch.name} T={model.arch.input_len} bits {m.bits}: {m.int8_instructions:.0f} "
                      f"instructions, {m.int8_cycles:.0f} cycles per window (float {m.float_instructions:.0f})")
    a = np.array(rows)
    for name, y in (("INT8_COEFFICIENTS", np.array(ys)), ("INT8_CYCLE_COEFFICIENTS", np.array(cycles))):
        _print_fit(name, keys, a, y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random", type=int, default=32, help="random architectures (default 32)")
    parser.add_argument("--wide", type=int, default=32,
                        help="random architectures with strided, dilated, padded windows and HAR activations "
                             "(default 32)")
    parser.add_argument("--seed", type=int, default=100, help="seed of the random architectures (default 100)")
    parser.add_argument("--int8", action="store_true",
                        help="fit the int8 inference cost model (pyodl/resources/inference.py) instead")
    args = parser.parse_args()
    if args.int8:
        fit_int8(args.random, args.wide, args.seed)
        return
    configs: list[tuple[Model, int | None]] = []
    for t in PAPER_INPUT_LENGTHS:
        configs += [(paper_model(t, 0), None), (paper_model(t, 0), 2)]
    rng = np.random.default_rng(args.seed)
    while len(configs) < 2 * len(PAPER_INPUT_LENGTHS) + args.random + args.wide:
        i = len(configs)
        arch = random_architecture(rng, f"cal{i}", wide=i >= 2 * len(PAPER_INPUT_LENGTHS) + args.random)
        tl = None if i % 2 == 0 else int(rng.integers(1, len(arch.param_layers) + 1))
        if estimate(arch, tl).fits:
            configs.append((Model(arch, glorot_params(arch, i)), tl))
    rows, ys, cycles, codes = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        builder = FirmwareBuilder(Path(tmp) / "build")
        for k, (model, tl) in enumerate(configs):
            m = measure(model, tl, builder, Path(tmp) / f"m{k}", batch=4)
            f = features(model.arch, tl)
            rows.append([f[key] for key in SAMPLE_KEYS])
            ys.append(m.instructions_per_sample)
            cycles.append(m.cycles_per_sample)
            est = estimate(model.arch, tl)
            code = (m.text_bytes - est.flash["layer table"] - est.flash["parameters (frozen, flash)"]
                    - est.flash["BatchNormalization statistics"])
            codes.append(code)
            print(f"{model.arch.name} T={model.arch.input_len} tl={tl}: {m.instructions_per_sample:.0f} instructions "
                  f"and {m.cycles_per_sample:.0f} cycles per sample, code {code} bytes")
    a = np.array(rows)
    for name, y in (("COEFFICIENTS", np.array(ys)), ("CYCLE_COEFFICIENTS", np.array(cycles))):
        rel = _print_fit(name, SAMPLE_KEYS, a, y)
        for k in np.argsort(rel)[::-1][:3]:
            model, tl = configs[k]
            print(f"  {rel[k]:.2%}: " + "; ".join(layer.describe() for layer in model.arch.layers) + f" (tl={tl})")
    print(f"code and constants besides the model: {min(codes)} to {max(codes)} bytes")
    with tempfile.TemporaryDirectory() as tmp:
        fit_steps(FirmwareBuilder(Path(tmp) / "build"), Path(tmp))


if __name__ == "__main__":
    main()
