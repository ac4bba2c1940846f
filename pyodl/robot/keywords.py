"""High-level keywords of the Robot suites: build the firmware for the paper's model or the user's (``MODEL``,
:mod:`pyodl.robot.suite_model`), start it on a board (the Unicorn STM32L496 model under plain ``robot``, Renode
under ``renode-test``), load windows into the simulated RAM through the mailbox, train, and compare every
weight with the TensorFlow golden model.

Suites never call a backend directly, so the same ``.robot`` file runs on both.
"""

from __future__ import annotations

import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
from robot.api import SkipExecution, logger
from robot.libraries.BuiltIn import BuiltIn

from pyodl.board.base import Board, BoardError, PowerCutError
from pyodl.board.mailbox import MailboxTransport
from pyodl.board.protocol import STATUS_CODES, STATUS_NAMES, Command, CommandError, Request
from pyodl.board.uart import BoardUart, UartTransport, encode_request, open_serial
from pyodl.data import Normalizer
from pyodl.data.watch import ACCELEROMETER, load_watch
from pyodl.data.windows import subject_split
from pyodl.model.architecture import (
    PAPER_TL_LAYERS,
    Kind,
    Model,
    ModelError,
    Params,
    glorot_params,
    paper_architecture,
    paper_model,
)
from pyodl.model.memory_plan import FLASH_PAGE_BYTES, SLOT_HEADER_WORDS, plan_memory
from pyodl.model.optimizer import SGD, Optimizer
from pyodl.model.quantized import QuantizedModel, parse_image
from pyodl.network.board import BoardNetwork, ModelMismatchError
from pyodl.reference import golden
from pyodl.resources.estimate import estimate
from pyodl.robot.selection import MODEL_TAG, PAPER_TAG, TestSelection
from pyodl.robot.suite_model import DATASET_WINDOWS, SuiteModel
from pyodl.toolchain.firmware import Firmware, FirmwareBuilder, RamOverflowError
from pyodl.toolchain.memory_map import FLASH_SIZE, SRAM_SIZE

# Reserved on the STM32L496 (RM0351 table 1): past the 1 MB of flash, nothing answers.
UNMAPPED_ADDRESS = 0x0900_0000
# Inside PWR's 1 KB window but past its registers (RM0351 5.4.26: the last is at 0x64).
UNMODELLED_REGISTER = 0x4000_7100

MODES = {"full": None, "tl": PAPER_TL_LAYERS}
WATCH_CLASSES = 7  # the bundled watch dataset's exercises
BACKENDS = ("unicorn", "renode", "serial")
# What a board on a serial line (BACKEND:serial) cannot do, by the tag of the tests that need it: they are skipped
# there with this reason.
SERIAL_SKIPS = {
    "power-control": "a board on a serial line has no power switch the test controls: power cycles and power cuts "
                     "during a SAVE need a simulator (Unicorn or Renode)",
    "memory-access": "over a serial line the host reaches the board only through frames: reading or writing its "
                     "memory and registers needs a simulator (Unicorn or Renode)",
    PAPER_TAG: "a board on a serial line runs the one firmware `pyodl flash` put on it, and the paper's rows need one "
             "per input size: give --variable MODEL:... and flash that model",
}


def _trainable(mode: str) -> int | None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    return MODES[mode]


class BoardKeywords:
    """Keywords for one suite; ``backend`` is ``unicorn`` (default), ``renode`` (under renode-test) or ``serial``
    (a board flashed with ``pyodl flash``, at ``port``). ``model`` and the rest are the suites' variables
    (robot/README.md): the user's model and how it trains; a bad one fails the first keyword that builds, with
    the variable named."""

    ROBOT_LIBRARY_SCOPE = "SUITE"

    def __init__(self, backend: str = "unicorn", model: str = "", data: str = "", mode: str = "",
                 trainable: str = "", optimizer: str = "", rate: str = "", port: str = "") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        self.backend = backend
        self.port = port
        self._serial: UartTransport | None = None
        self.suite: SuiteModel | None = None
        self._suite_error: ModelError | None = None
        try:
            self.suite = SuiteModel.from_variables(model, data, mode, trainable, optimizer, rate)
        except ModelError as exc:
            self._suite_error = exc
        self._model_given = bool(model)
        self._trainable_layers: int | None = None
        self.optimizer: Optimizer = SGD
        self._suite_built = False
        self._tmp = tempfile.TemporaryDirectory(prefix="pyodl-robot-")
        self._work = Path(self._tmp.name)
        self._builder: FirmwareBuilder | None = None
        self._firmware: dict[tuple[str, int, str], Firmware] = {}
        self._key: tuple[str, int, str] | None = None
        self.board: Board | None = None
        self.model: Model | None = None
        self.mode = "full"
        self.net: BoardNetwork | None = None
        self._batches: tuple[np.ndarray, np.ndarray] | None = None
        self._learning_rate = 0.0
        self._snapshot: Params | None = None
        self._saved: tuple[int, int] | None = None
        self._reply_status: int | None = None
        self.training_instructions = 0
        self._pers: tuple[np.ndarray, np.ndarray] | None = None
        self._test: tuple[np.ndarray, np.ndarray] | None = None
        self._qmodel: QuantizedModel | None = None
        self._int8_classes: np.ndarray | None = None
        # Robot tells a library's listeners when its suite starts (which of its tests run for this MODEL) and
        # when the library goes out of scope (the suite ends).
        self.ROBOT_LIBRARY_LISTENER = [TestSelection(self._model_given), _Cleanup(self)]

    # -- building ---------------------------------------------------------------------------------------

    def _build(self, model: Model, trainable: int | None, name: str, optimizer: Optimizer = SGD) -> Firmware:
        if self._builder is None:
            self._builder = FirmwareBuilder(self._work / "build")
        return self._builder.export_and_build(model, self._work / name, trainable, optimizer,
                                              dataset_windows=DATASET_WINDOWS)

    def build_firmware_for_paper_model(self, input_len: int = 40, mode: str = "full", seed: int = 0) -> str:
        """Export the paper's model at ``input_len`` with initial weights from ``seed``, link the firmware
        for ``mode`` (full or tl) and log the SRAM each section takes. Returns the ELF path."""
        input_len, seed = int(input_len), int(seed)
        return self._build_for(paper_model(input_len, seed), mode, "paper", _trainable(mode))

    def build_firmware_for_suite_model(self, input_len: int = 40, mode: str = "tl") -> str:
        """The user's model (``--variable MODEL:...``) in its MODE (default full) or TRAINABLE, with its OPTIMIZER;
        without MODEL, the paper's model at ``input_len`` in ``mode``. Fails with the variable's fault, or with
        export's or the link's message (a layer the device lacks, a model that does not fit). Returns the ELF
        path."""
        suite = self._suite()
        if suite is None:
            return self.build_firmware_for_paper_model(input_len, mode)
        model = suite.model()
        label = "tl" if suite.trainable is not None else "full"
        return self._build_for(model, f"{label}{suite.trainable or ''}", "model", suite.trainable, suite.optimizer)

    def _suite(self) -> SuiteModel | None:
        if self._suite_error is not None:
            raise self._suite_error
        return self.suite

    def _build_for(self, model: Model, mode: str, name: str, trainable: int | None,
                   optimizer: Optimizer = SGD) -> str:
        input_len = model.arch.input_len
        key = (name, input_len, mode)
        self.model = model
        self.mode = mode
        self._trainable_layers = trainable
        self.optimizer = optimizer
        self._suite_built = name == "model"
        self._key = key
        if key not in self._firmware:
            self._firmware[key] = self._build(model, trainable, f"{name}-{input_len}-{mode}", optimizer)
        firmware = self._firmware[key]
        sections = firmware.ram_sections()
        table = ", ".join(f"{name} {size}" for name, size in sections.items())
        what = f"{self.suite.path.name}" if name == "model" and self.suite is not None else f"{name} model"
        logger.info(f"{what} T={input_len} {mode}: SRAM {firmware.ram_bytes()} of {SRAM_SIZE} bytes ({table}); "
                    f"flash {firmware.flash_bytes()} bytes")
        return str(firmware.elf)

    def firmware_should_fit_in_sram(self) -> int:
        """Fails when the linked firmware (stack included) takes more than the STM32L496's 320 KB."""
        firmware = self._current_firmware()
        used = firmware.ram_bytes()
        if used > SRAM_SIZE:
            raise AssertionError(f"the firmware takes {used} bytes of SRAM, more than {SRAM_SIZE}")
        logger.info(f"SRAM used: {used} bytes, {SRAM_SIZE - used} bytes free")
        return used

    def suite_model_should_fit_the_chip(self) -> int:
        """Build the suite's model (MODEL, else the paper's at T=40 in TL) and log its SRAM and flash against the
        STM32L496's 320 KB and 1 MB, byte by byte per section. A model that does not fit fails with the build's
        own message (the overflow in bytes), the estimator's bytes per item logged beside it. Returns the SRAM
        bytes."""
        try:
            self.build_firmware_for_suite_model()
        except RamOverflowError as exc:
            assert self.model is not None
            fitted = estimate(self.model.arch, self._trainable_layers, optimizer=self.optimizer,
                              dataset_windows=DATASET_WINDOWS)
            logger.info("estimated SRAM per item (bytes): " + ", ".join(f"{k} {v}" for k, v in fitted.ram.items()) +
                        f"; total {fitted.ram_total} of {SRAM_SIZE}")
            logger.info(str(exc))
            raise AssertionError(str(exc).splitlines()[0]) from None
        firmware = self._current_firmware()
        ram, flash = firmware.ram_bytes(), firmware.flash_bytes()
        logger.info(f"SRAM {ram} of {SRAM_SIZE} bytes ({SRAM_SIZE - ram} free): " +
                    ", ".join(f"{name} {size}" for name, size in firmware.ram_sections().items()))
        logger.info(f"flash {flash} of {FLASH_SIZE} bytes ({FLASH_SIZE - flash} free): " +
                    ", ".join(f"{name} {size}" for name, size in firmware.flash_sections().items()))
        if ram > SRAM_SIZE or flash > FLASH_SIZE:
            raise AssertionError(f"the firmware takes {ram} bytes of SRAM and {flash} bytes of flash, more than "
                                 f"the STM32L496's {SRAM_SIZE} and {FLASH_SIZE}")
        return ram

    def oversized_model_should_fail_to_link(self, input_len: int = 4000) -> int:
        """Link the paper's model at an input length whose activations cannot fit in SRAM: the link must
        fail and say by how many bytes it overflows. Returns the overflow."""
        model = paper_model(int(input_len), 0)
        try:
            self._build(model, None, f"oversized-{input_len}")
        except RamOverflowError as exc:
            logger.info(str(exc).splitlines()[0])
            if exc.overflow <= 0 or f"by {exc.overflow} bytes" not in str(exc):
                raise AssertionError(f"the overflow message does not give the bytes: {exc}") from exc
            return exc.overflow
        raise AssertionError(f"the paper's model at T={input_len} linked, but it cannot fit in {SRAM_SIZE} bytes")

    def _current_firmware(self) -> Firmware:
        if self._key is None:
            raise AssertionError("call `Build Firmware For Paper Model` or `Build Firmware For Suite Model` first")
        return self._firmware[self._key]

    # -- the board --------------------------------------------------------------------------------------

    def _new_board(self) -> Board:
        if self.backend == "unicorn":
            from pyodl.board.unicorn import UnicornBoard

            return UnicornBoard()
        from pyodl.board.renode import RenodeBoard

        return RenodeBoard.from_robot()

    def skip_what_the_backend_cannot_run(self) -> None:
        """On BACKEND:serial, skip the current test when one of its tags names something a serial line cannot do
        (SERIAL_SKIPS: power control, memory access, the paper's rows), with the reason; elsewhere nothing."""
        if self.backend != "serial":
            return
        tags = [str(t) for t in BuiltIn().get_variable_value("@{TEST TAGS}", [])]
        for tag in tags:
            if tag == PAPER_TAG and MODEL_TAG in tags:  # a user-model row of a suite whose rows are the paper's
                continue
            if tag in SERIAL_SKIPS:
                raise SkipExecution(f"skipped on BACKEND:serial (tag {tag}): {SERIAL_SKIPS[tag]}")

    def start_board(self) -> None:
        """Load the firmware built last on a fresh board and boot it until it waits for commands. On BACKEND:serial
        the board must already run this very firmware (`pyodl flash`): its model hash is checked and its
        parameters are set to the model's, so every test starts from the same weights."""
        firmware = self._current_firmware()
        if self.backend == "serial":
            self._start_serial_board(firmware)
            return
        if self.board is not None:
            self.board.close()
        self.board = self._new_board()
        self.board.load_elf(firmware.elf)
        assert self.model is not None
        self.net = BoardNetwork(MailboxTransport(self.board), self.model.arch, optimizer=self.optimizer)
        self.net.set_trainable(self._trainable_layers or len(self.model.arch.param_layers))
        logger.info(f"booted on {self.backend} in {self.board.executed_instructions()} instructions")

    def _start_serial_board(self, firmware: Firmware) -> None:
        assert self.model is not None
        self.stop_board()
        if not self.port:
            raise AssertionError("BACKEND:serial needs the board's port: --variable PORT:/dev/ttyACM0 (or a pyserial "
                                 "URL such as socket://HOST:PORT)")
        try:
            self._serial = open_serial(self.port)
        except (OSError, ValueError) as exc:
            raise AssertionError(f"cannot open PORT {self.port}: {exc}") from None
        try:
            self.net = BoardNetwork(self._serial, self.model.arch, firmware.model_hash(), self.optimizer)
        except ModelMismatchError as exc:
            raise AssertionError(f"{exc} (pyodl flash MODEL --dataset-windows {DATASET_WINDOWS}, with this MODE, "
                                 "TRAINABLE and OPTIMIZER)") from None
        self.net.set_params(self.model.params)
        self.net.set_trainable(self._trainable_layers or len(self.model.arch.param_layers))
        logger.info(f"the board at {self.port} runs this firmware (model hash 0x{firmware.model_hash():08x}); "
                    "its parameters set to the model's")

    def stop_board(self) -> None:
        if self.board is not None:
            self.board.close()
        if self._serial is not None:
            self._serial.close()
        self._serial = None
        self.board = None
        self.net = None

    def _net(self) -> BoardNetwork:
        if self.net is None:
            raise AssertionError("call `Start Board` first")
        return self.net

    def use_transport(self, transport: str) -> None:
        """Route the following commands through the RAM ``mailbox`` or ``uart`` frames on the console UART (on
        BACKEND:serial every command goes by UART frames already)."""
        net, board = self._net(), self.board
        if self.backend == "serial":
            if transport != "uart":
                raise AssertionError(f"BACKEND:serial has the UART only, not the {transport}")
            return
        assert board is not None
        if transport == "mailbox":
            net.transport = MailboxTransport(board)
        elif transport == "uart":
            net.transport = UartTransport(BoardUart(board))
        else:
            raise ValueError(f"transport must be mailbox or uart, got {transport!r}")

    # -- training and golden comparison ---------------------------------------------------------------

    def run_training_steps(self, steps: int = 10, batch: int = 32, learning_rate: float = 0.01,
                           seed: int = 1) -> float:
        """Train ``steps`` SGD steps on ``batch`` random windows each: per step, the batch's windows and labels
        go into the firmware's dataset region in one transfer and one TRAIN_BATCH accumulates them and steps
        (window by window through the mailbox when the batch is larger than the region). Returns the last
        step's mean loss; logs instructions per sample."""
        net, board = self._net(), self.board
        assert self.model is not None
        if self._suite_built and self.suite is not None:  # DATA's windows, or the seeded generator's
            windows, labels = self.suite.batches(self.model.arch, int(steps), int(batch), int(seed))
        else:
            windows, labels = golden.random_batches(self.model.arch, int(steps), int(batch), int(seed))
        self._batches = (windows, labels)
        self._learning_rate = float(learning_rate)
        start, seconds = (0 if board is None else board.executed_instructions()), time.perf_counter()
        loss = 0.0
        for x, y in zip(windows, labels, strict=True):
            loss = net.train_step(x, y, self._learning_rate)
        samples = int(steps) * int(batch)
        if board is None:  # a board on a serial line: no instruction count, the wall time
            logger.info(f"{samples} samples trained in {time.perf_counter() - seconds:.2f} s over {self.port}")
            return loss
        self.training_instructions = board.executed_instructions() - start
        logger.info(f"{samples} samples trained in {self.training_instructions} instructions "
                    f"({self.training_instructions // samples} per sample, protocol included)")
        return loss

    def weights_should_match_golden_model(self) -> None:
        """Train the same initial weights on the same batches in TensorFlow and compare every weight:
        |w_board - w_tf| <= 1e-6 + 1e-5 |w_tf| (docs/architecture.md, the golden contract)."""
        if self._batches is None or self.model is None:
            raise AssertionError("call `Run Training Steps` first")
        windows, labels = self._batches
        run = golden.train(self.model, windows, labels, self._learning_rate, self._trainable_layers, self.optimizer)
        atol, rtol = golden.tolerance(self.optimizer, self._learning_rate, len(windows))
        diffs = golden.compare(self.model, self._net().get_params(), run.params, atol, rtol)
        for d in diffs:
            logger.info(f"{d.name}: max abs {d.max_abs:.3e}, {d.worst_ratio:.2%} of the tolerance")
        bad = [d for d in diffs if not d.ok]
        if bad:
            raise AssertionError("weights outside the golden tolerance: " + "; ".join(
                f"{d.name} max abs {d.max_abs:.3e} ({d.worst_ratio:.0%} of tolerance)" for d in bad))

    # -- memory ---------------------------------------------------------------------------------------

    def stack_high_water_mark_should_be_below_reserved_stack(self) -> int:
        """The deepest stack use since boot (painted-stack scan by the firmware) must stay inside the
        reserved stack. Returns the bytes used."""
        info = self._net().info()
        logger.info(f"stack high-water mark {info.stack_high_water} of {info.stack_size} reserved bytes")
        if not 0 < info.stack_high_water < info.stack_size:
            raise AssertionError(f"stack high-water mark {info.stack_high_water} is not below the reserved "
                                 f"{info.stack_size} bytes")
        return info.stack_high_water

    # -- protocol ---------------------------------------------------------------------------------------

    def info_should_describe_the_model(self) -> None:
        info = self._net().info()
        assert self.model is not None
        arch = self.model.arch
        want = (arch.input_len, arch.input_ch, arch.num_classes, len(arch.param_layers))
        got = (info.input_len, info.input_ch, info.num_classes, info.param_layers)
        if got != want:
            raise AssertionError(f"INFO says (T, C, classes, parameter layers) = {got}, expected {want}")

    def parameters_should_round_trip(self, scale: float = 0.5) -> None:
        """Set every trainable parameter to a scaled copy and read it back bit for bit, then restore."""
        net = self._net()
        original = net.get_params()
        changed = [(w, b) if layer.frozen else ((w * scale).astype(np.float32), (b * scale).astype(np.float32))
                   for layer, (w, b) in zip(net.layers, original, strict=True)]
        net.set_params(changed)
        back = net.get_params()
        for (w, b), (w2, b2) in zip(changed, back, strict=True):
            if not (np.array_equal(w, w2) and np.array_equal(b, b2)):
                raise AssertionError("parameters read back differ from the ones written")
        net.set_params(original)

    def prediction_should_be_a_distribution(self, seed: int = 3) -> int:
        """Predict one random window: the probabilities must sum to 1 and the class must be their argmax."""
        assert self.model is not None
        x = np.random.default_rng(int(seed)).standard_normal((self.model.arch.input_len, self.model.arch.input_ch))
        cls, probs = self._net().predict(x.astype(np.float32))
        if not (abs(float(probs.sum()) - 1.0) < 1e-5 and cls == int(np.argmax(probs))):
            raise AssertionError(f"prediction {cls} with probabilities {probs} is not a distribution and its argmax")
        return cls

    def take_weight_snapshot(self) -> None:
        self._snapshot = self._net().get_params()

    def weights_should_be_unchanged(self) -> None:
        if self._snapshot is None:
            raise AssertionError("call `Take Weight Snapshot` first")
        for (w, b), (w2, b2) in zip(self._snapshot, self._net().get_params(), strict=True):
            if not (np.array_equal(w, w2) and np.array_equal(b, b2)):
                raise AssertionError("the weights changed")

    # -- int8: personalize on recorded windows, quantize on the board, compare with TFLite ------------------

    def build_firmware_for_watch_model(self, input_len: int = 40, mode: str = "tl", seed: int = 0) -> str:
        """The paper's architecture for the bundled watch dataset (3 accelerometer channels, 7 exercises) with
        Glorot weights from ``seed``, linked for ``mode``. Returns the ELF path."""
        arch = paper_architecture(int(input_len), len(ACCELEROMETER), WATCH_CLASSES)
        return self._build_for(Model(arch, glorot_params(arch, int(seed))), mode, "watch", _trainable(mode))

    def personalize_on_watch_subject(self, subject: int = 1, epochs: int = 5, batch: int = 16,
                                     learning_rate: float = 0.05) -> float:
        """Train on the first half of each of ``subject``'s recordings (windows of the model's length, half
        overlapping, standardised with their own statistics), in TRAIN_BATCH steps; keeps the rest as test
        windows. Returns the last step's mean loss."""
        assert self.model is not None
        recordings = [r for r in load_watch()[0] if r.subject == int(subject)]
        if not recordings:
            raise AssertionError(f"the watch dataset has no subject {subject}")
        length = self.model.arch.input_len
        pers, test, _ = subject_split(recordings, length, length // 2, 0.5, ACCELEROMETER, "time")
        norm = Normalizer.fit(pers.x)
        self._pers, self._test = (norm(pers.x), pers.y), (norm(test.x), test.y)
        net, rng = self._net(), np.random.default_rng(int(subject))
        loss = 0.0
        for _ in range(int(epochs)):
            order = rng.permutation(len(pers))
            for k in range(0, len(order), int(batch)):
                idx = order[k:k + int(batch)]
                loss = net.train_step(self._pers[0][idx], self._pers[1][idx], float(learning_rate))
        logger.info(f"subject {subject}: {len(pers)} personalization windows, {len(test)} test windows, "
                    f"last loss {loss:.4f}")
        return loss

    def personalize_on_suite_data(self, epochs: int = 3, batch: int = 16, learning_rate: float = 0.05,
                                  seed: int = 1) -> float:
        """The suite model's int8 path: train on the personalization windows (DATA's first half of each recording,
        or seeded standard-normal windows with uniform labels) in TRAIN_BATCH steps, keep the rest as test
        windows. Returns the last step's mean loss."""
        if self.suite is None or self.model is None or not self._suite_built:
            raise AssertionError("call `Build Firmware For Suite Model` with a MODEL first")
        self._pers, self._test = self.suite.split(self.model.arch, int(seed))
        net, rng = self._net(), np.random.default_rng(int(seed))
        loss = 0.0
        for _ in range(int(epochs)):
            order = rng.permutation(len(self._pers[1]))
            for k in range(0, len(order), int(batch)):
                idx = order[k:k + int(batch)]
                loss = net.train_step(self._pers[0][idx], self._pers[1][idx], float(learning_rate))
        logger.info(f"{len(self._pers[1])} personalization windows, {len(self._test[1])} test windows "
                    f"({'DATA' if self.suite.data else 'seeded generator'}), last loss {loss:.4f}")
        return loss

    def quantize_on_board(self, bits: str = "8,8,8,8") -> int:
        """CALIBRATE on the personalization windows, then QUANTIZE with these weight widths (one per
        parameter layer; a single width applies to every layer, BatchNormalization staying 8-bit, the only
        width it takes). Returns the int8 image's bytes."""
        if self._pers is None:
            raise AssertionError("call `Personalize On Watch Subject` or `Personalize On Suite Data` first")
        net = self._net()
        widths = [int(b) for b in str(bits).split(",")]
        if len(widths) == 1:
            layers = [net.arch.layers[i] for i in net.arch.param_layers]
            widths = [8 if layer.kind is Kind.BATCHNORM else widths[0] for layer in layers]
        net.int8_calibrate(self._pers[0], reset=True)
        size = net.int8_quantize(widths)
        self._qmodel = parse_image(net.arch, net.int8_image())
        logger.info(f"quantized with {bits}-bit weights: image {size} bytes, weights {self._qmodel.weight_bytes()} "
                    f"bytes packed")
        return size

    def int8_inference_should_match_tflite(self) -> float:
        """Every test window through PREDICT_Q and through TFLite's reference kernels on the board's own
        quantized model: int8 logits and probabilities equal, bit for bit. Returns the int8 accuracy."""
        if self._qmodel is None or self._test is None:
            raise AssertionError("call `Quantize On Board` first")
        from pyodl.reference.tflite import TFLiteModel  # TensorFlow: only once a board has quantized

        tfl = TFLiteModel(self._qmodel)
        net, (xs, ys) = self._net(), self._test
        classes = []
        for k, x in enumerate(xs):
            cls, logits, probs = net.int8_predict(x)
            run = tfl.run(x)
            if not (np.array_equal(logits, run.logits) and np.array_equal(probs, run.probs)):
                raise AssertionError(f"test window {k}: the board's int8 logits {logits.tolist()} and probabilities "
                                     f"{probs.tolist()}, TFLite's {run.logits.tolist()} and {run.probs.tolist()}")
            classes.append(cls)
        self._int8_classes = np.array(classes)
        accuracy = float(np.mean(self._int8_classes == ys))
        logger.info(f"{len(xs)} test windows: int8 equal to TFLite bit for bit, accuracy {accuracy:.3f}")
        return accuracy

    def int8_classes_should_agree_with_float(self, min_agreement: float = 0.9) -> float:
        """The int8 model's class equals the float model's (PREDICT) on at least ``min_agreement`` of the test
        windows. Returns the agreement."""
        if self._int8_classes is None or self._test is None:
            raise AssertionError("call `Int8 Inference Should Match TFLite` first")
        float_classes = self._net().predict_classes(self._test[0])
        agreement = float(np.mean(float_classes == self._int8_classes))
        logger.info(f"int8 and float agree on {agreement:.1%} of {len(float_classes)} test windows; float "
                    f"accuracy {float(np.mean(float_classes == self._test[1])):.3f}")
        if agreement < float(min_agreement):
            raise AssertionError(f"int8 and float agree on {agreement:.1%} of the test windows, "
                                 f"below {float(min_agreement):.0%}")
        return agreement

    # -- persistence: SAVE, power cycles and power cuts ------------------------------------------------

    def save_should_write_slot(self, slot: int, sequence: int) -> None:
        """SAVE the trained parameters; it must land in ``slot`` (0 = A, 1 = B) as copy number ``sequence``."""
        got = self._net().save()
        if got != (int(slot), int(sequence)):
            raise AssertionError(f"SAVE wrote slot {got[0]} as copy {got[1]}, expected slot {slot} copy {sequence}")

    def save_parameters(self) -> tuple[int, int]:
        """SAVE the trained parameters into whichever slot the firmware picks; returns (slot, copy number)."""
        self._saved = self._net().save()
        logger.info(f"SAVE wrote slot {'AB'[self._saved[0]]} as copy {self._saved[1]}")
        return self._saved

    def load_should_bring_back_the_last_save(self) -> None:
        """LOAD must restore the copy `Save Parameters` wrote: the same slot and copy number."""
        if self._saved is None:
            raise AssertionError("call `Save Parameters` first")
        got = self._net().load()
        if got != self._saved:
            raise AssertionError(f"LOAD brought back slot {got[0]} copy {got[1]}, the last SAVE wrote slot "
                                 f"{self._saved[0]} copy {self._saved[1]}")

    def power_cycle_board(self) -> None:
        """Power off and on: RAM is lost, flash (and its persistence slots) kept; the firmware boots again."""
        board = self.board
        if board is None or self.model is None:
            raise AssertionError("call `Start Board` first")
        board.reset()
        self.net = BoardNetwork(MailboxTransport(board), self.model.arch, optimizer=self.optimizer)

    def board_should_have_booted_from(self, source: str) -> None:
        """``source``: ``defaults`` (the exported weights), ``slot A`` or ``slot B``."""
        sources = {"defaults": 0, "slot A": 1, "slot B": 2}
        if source not in sources:
            raise ValueError(f"source must be one of {', '.join(sources)}, got {source!r}")
        info = self._net().info()
        got = next(name for name, code in sources.items() if code == info.boot_slot)
        if info.boot_slot != sources[source]:
            raise AssertionError(f"the board booted from {got}, expected {source}")
        logger.info(f"booted from {got}, copy {info.boot_sequence}")

    def save_and_load_the_emulation(self) -> None:
        """Renode only: `Save` the whole emulation to a file (every peripheral, the platform's Python
        peripherals' script variables among them: flashctl's bank), clear it, `Load` the file and go on with
        the same board. The Unicorn board has no snapshots."""
        board = self.board
        if board is None:
            raise AssertionError("call `Start Board` first")
        from pyodl.board.renode import RenodeBoard

        if not isinstance(board, RenodeBoard):
            raise AssertionError("only Renode saves and loads emulations")
        board.save_and_load(self._work / "emulation.save")

    def flash_operation_of_save(self, point: str) -> int:
        """The number (from 1) of a flash operation of one SAVE of this firmware, which erases its slot's
        pages, then programs the state's double-words, then the header's four (the commit word last).
        ``point``: first erase, last erase, first state, middle state, last state, first header, commit."""
        self._current_firmware()
        assert self.model is not None
        plan = plan_memory(self.model.arch, self._trainable_layers, self.optimizer)
        erases = plan.slot_bytes() // FLASH_PAGE_BYTES
        state = (plan.state_words() + 1) // 2
        total = erases + state + SLOT_HEADER_WORDS // 2
        points = {"first erase": 1, "last erase": erases, "first state": erases + 1,
                  "middle state": erases + (state + 1) // 2, "last state": erases + state,
                  "first header": erases + state + 1, "commit": total}
        if point not in points:
            raise ValueError(f"point must be one of {', '.join(points)}, got {point!r}")
        logger.info(f"{point}: flash operation {points[point]} of {total}")
        return points[point]

    def cut_power_at_flash_operation(self, operation: int, halfway: bool = False) -> None:
        """Arm a power cut at the ``operation``-th flash erase or program from now, before it or halfway
        through it. The Unicorn board stops there; Renode's flash controller stops changing flash and
        reports an error, so the firmware gives the SAVE up at once."""
        board, operation, halfway = self.board, int(operation), str(halfway).lower() in ("true", "halfway")
        if board is None:
            raise AssertionError("call `Start Board` first")
        if self.backend == "unicorn":
            from pyodl.board.unicorn import UnicornBoard

            assert isinstance(board, UnicornBoard)
            board.flash.cut_power(operation, halfway)
        else:
            from pyodl.board.renode import RenodeBoard

            assert isinstance(board, RenodeBoard)
            board.execute(f"sysbus.flashctl ControlWrite {2 if halfway else 1} {operation}")

    def save_should_be_cut_off(self) -> None:
        """SAVE must not complete: the supply goes during it (armed by `Cut Power At Flash Operation`)."""
        try:
            got = self._net().save()
        except PowerCutError as exc:  # Unicorn: the board stopped
            logger.info(str(exc))
            return
        except CommandError as exc:  # Renode: the firmware saw the dead controller and gave up
            if exc.status != STATUS_CODES["ODL_APP_ERR_FLASH"]:
                raise AssertionError(f"SAVE failed, but not at the flash: {exc}") from exc
            logger.info(str(exc))
            return
        raise AssertionError(f"SAVE completed (slot {got[0]}, copy {got[1]}) through the power cut")

    def send_command(self, command: str, arg0: int = 0, arg1: int = 0, arg2: int = 0, arg_f: float = 0.0,
                     data_floats: int = 0, fill: float = 0.0) -> int:
        """Send one command through the current transport, by name (e.g. SGD_STEP) or number, and remember its status
        without failing on a refusal. ``data_floats`` values equal to ``fill`` are sent as data."""
        data = np.full(int(data_floats), float(fill), dtype="<f4").tobytes()
        code = int(command) if str(command).isdigit() else Command[command]
        request = Request(code, (int(arg0), int(arg1), int(arg2), 0), float(arg_f), data)
        self._reply_status = self._net().transport.execute(request).status
        return self._reply_status

    def command_should_answer(self, expected: str, command: str, arg0: int = 0, arg1: int = 0, arg2: int = 0,
                              arg_f: float = 0.0, data_floats: int = 0, fill: float = 0.0) -> None:
        """`Send Command` followed by `Last Status Should Be` ``expected``."""
        self.send_command(command, arg0, arg1, arg2, arg_f, data_floats, fill)
        self.last_status_should_be(expected)

    def send_frame_with_bad_crc(self, command: str = "SGD_STEP") -> None:
        frame = bytearray(encode_request(Request(Command[command], arg_f=0.01)))
        frame[-1] ^= 0xFF
        self._send_raw(bytes(frame))

    def send_frame_with_length(self, length: int) -> None:
        """A frame header that announces ``length`` payload bytes (and sends no payload)."""
        self._send_raw(bytes([0xA5, Command.SET_PARAMS, 0, int(length) & 0xFF, (int(length) >> 8) & 0xFF]))

    def send_frame_with_short_payload(self) -> None:
        """A well-formed, CRC-correct frame whose payload is shorter than the 20 bytes of fields."""
        body = bytes([Command.INFO, 0, 4, 0]) + b"\x00" * 4
        self._send_raw(bytes([0xA5]) + body + zlib.crc32(body).to_bytes(4, "little"))

    def _send_raw(self, raw: bytes) -> None:
        assert self.board is not None
        uart = UartTransport(BoardUart(self.board))
        uart.stream.write(raw)
        self._reply_status = uart.read_reply()[1].status

    def store_dataset_records(self, count: int = 4, fill: float = 0.25, label: int = 1, first: int = 0) -> None:
        """Store ``count`` records of windows filled with ``fill`` and label ``label`` (neither checked here,
        as a buggy host would send them) from record ``first`` of the dataset region, through the current
        transport."""
        assert self.model is not None
        size = self.model.arch.input_size
        record = np.full(size + 1, float(fill), dtype="<f4")
        record[size:] = np.array([int(label)], dtype="<u4").view("<f4")
        self._net().store_dataset_bytes(int(first) * record.nbytes, np.tile(record, int(count)).tobytes())

    def last_status_should_be(self, expected: str) -> None:
        """``expected``: a status name of pyodl.board.protocol.STATUS_NAMES or its number."""
        want = int(expected) if expected.isdigit() else next(
            (code for code, name in STATUS_NAMES.items() if name == expected), None)
        if want is None:
            raise ValueError(f"unknown status {expected!r}; known: {sorted(STATUS_NAMES.values())}")
        if self._reply_status != want:
            got = STATUS_NAMES.get(self._reply_status or 0, "?")
            raise AssertionError(f"status {self._reply_status} ({got}), expected {want} ({STATUS_NAMES[want]})")

    def read_outside_the_memory_map(self, address: int = UNMAPPED_ADDRESS) -> None:
        """Read a word where the STM32L496 has nothing (reserved space past flash), as a firmware bug would.
        The Unicorn board refuses it at once (BoardError); Renode answers 0 and only logs "ReadDoubleWord
        from non existing peripheral", which `Platform Errors Should Not Be In The Log` then fails on."""
        board = self.board
        if board is None:
            raise AssertionError("call `Start Board` first")
        if self.backend == "renode":
            from pyodl.board.renode import RenodeBoard

            assert isinstance(board, RenodeBoard)
            board.execute(f"sysbus ReadDoubleWord {address:#x}")  # past the host-side range check, as the CPU
        else:
            board.read(address, 4)

    def write_an_unmodelled_register(self, address: int = UNMODELLED_REGISTER) -> None:
        """Write a word where the platform has a peripheral but not this register (PWR offset 0x100, past
        RM0351's PWR map), as a firmware bug would. The Unicorn board fails at once; Renode's PWR model logs an
        error ("does not model"), which `Platform Errors Should Not Be In The Log` then fails on."""
        board = self.board
        if board is None:
            raise AssertionError("call `Start Board` first")
        from pyodl.board.renode import RenodeBoard
        from pyodl.board.unicorn import UnicornBoard

        assert isinstance(board, RenodeBoard | UnicornBoard)
        board.bus_write(int(address), 0)

    def board_should_not_have_faulted(self) -> None:
        """The board answers INFO. An access outside the memory map fails the test too: Unicorn raises at the
        access itself; under Renode every test's teardown checks the log (robot/pyodl.resource)."""
        try:
            self._net().info()
        except (BoardError, CommandError) as exc:
            raise AssertionError(f"the board no longer answers: {exc}") from exc

    def _release(self) -> None:
        self.stop_board()
        if self._builder is not None:
            self._builder.close()
        self._tmp.cleanup()


class _Cleanup:
    """Frees a suite's board and build files when Robot closes the library."""

    ROBOT_LISTENER_API_VERSION = 3

    def __init__(self, library: BoardKeywords) -> None:
        self.library = library

    def close(self) -> None:
        self.library._release()
