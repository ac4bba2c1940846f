"""The firmware's model, trained on a board through either transport, with numpy at the boundary.

:class:`BoardNetwork` offers the same calls as :class:`pyodl.network.host.HostNetwork`, so
``golden-check``, the Robot keywords and personalization run unchanged on the host library, a simulated
board or a real one.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from pyodl.board.protocol import (
    INFO_FIELDS,
    INFO_FORMAT,
    OPTIMIZER_KINDS,
    STATUS_FROZEN,
    STREAM_SETUP,
    STREAM_SETUP_FORMAT,
    Command,
    CommandError,
    DatasetMemory,
    ProtocolError,
    Reply,
    Request,
    Transport,
    floats,
)
from pyodl.model.architecture import Architecture, Params
from pyodl.model.memory_plan import FLOAT_BYTES, LABEL_BYTES
from pyodl.model.optimizer import Optimizer, OptimizerState
from pyodl.model.stream import Answer, Decision, StreamSetup
from pyodl.network.base import Adaptive, Network


class ModelMismatchError(RuntimeError):
    """The board runs firmware built for another model."""


@dataclass(frozen=True)
class BoardInfo:
    """The firmware's answer to INFO (``odl_info_t`` in firmware/app/app.h; the fields are matched by name,
    so a header that gains, loses or reorders a field fails here, not with shifted values)."""

    protocol_version: int
    model_hash: int
    input_len: int
    input_ch: int
    num_classes: int
    num_layers: int
    param_layers: int
    trainable_capacity: int
    trainable: int
    data_capacity: int
    ram_static_bytes: int
    stack_size: int
    stack_high_water: int
    accumulated: int
    optimizer: int  # odl_optimizer_kind_t
    param_bound: float  # the firmware refuses any parameter beyond +-param_bound
    boot_slot: int  # where the parameters came from at boot: 0 exported defaults, 1 slot A, 2 slot B
    boot_sequence: int  # that slot's sequence number
    clock_hz: int  # the core clock the firmware runs on
    clock_status: int  # odl_clock_status_t of the clock setup at boot (CLOCK_STATUS names them)
    dataset_windows: int  # records the dataset region holds (0: the build has none)
    dataset_record_bytes: int  # one record: a window and its label


def read_info(transport: Transport) -> BoardInfo:
    """INFO from whatever firmware answers on ``transport``, before knowing its model."""
    return info_from_reply(transport.execute(Request(Command.INFO)))


def info_from_reply(reply: Reply) -> BoardInfo:
    """The BoardInfo an INFO reply carries."""
    if reply.status != 0:
        raise CommandError("INFO", reply.status)
    if len(reply.data) < struct.calcsize(INFO_FORMAT):
        raise ProtocolError(f"INFO answered {len(reply.data)} bytes, not the {struct.calcsize(INFO_FORMAT)} of "
                            "this pyodl's firmware: flash firmware built by this pyodl")
    values = struct.unpack_from(INFO_FORMAT, reply.data)
    return BoardInfo(**dict(zip(INFO_FIELDS, values, strict=True)))


@dataclass(frozen=True)
class ParamLayer:
    index: int  # in the firmware's layer table, the same as Architecture.layers
    weights: int
    bias: int
    frozen: bool


class BoardNetwork(Network):
    """One board running the pyodl firmware for ``arch``; refuses a board that runs another model."""

    def __init__(self, transport: Transport, arch: Architecture, model_hash: int | None = None,
                 optimizer: Optimizer | None = None) -> None:
        self.transport = transport
        self.arch = arch
        info = self.info()
        got = (info.input_len, info.input_ch, info.num_classes, info.num_layers)
        want = (arch.input_len, arch.input_ch, arch.num_classes, len(arch.layers))
        if got != want:
            raise ModelMismatchError(f"the board runs a model with (input length, channels, classes, layers) = "
                                     f"{got}, expected {want}: flash firmware built for this model")
        if model_hash is not None and info.model_hash != model_hash:
            raise ModelMismatchError(f"the board's model hash is 0x{info.model_hash:08x}, expected "
                                     f"0x{model_hash:08x}: flash firmware built for this model")
        if optimizer is not None and info.optimizer != OPTIMIZER_KINDS[optimizer.c_kind]:
            running = {v: k for k, v in OPTIMIZER_KINDS.items()}.get(info.optimizer, str(info.optimizer))
            raise ModelMismatchError(f"the board's firmware trains with {running}, expected {optimizer.c_kind} "
                                     f"({optimizer.describe()}): export and flash it with this --optimizer")
        self._chunk = info.data_capacity // 4
        self._param_bound = np.float32(info.param_bound)
        self.dataset_windows = info.dataset_windows
        record = arch.input_size * FLOAT_BYTES + LABEL_BYTES
        if info.dataset_windows and info.dataset_record_bytes != record:
            raise ProtocolError(f"the board's dataset records take {info.dataset_record_bytes} bytes, not the "
                                f"{record} of a window and its label: flash firmware built by this pyodl")
        self._record_bytes = record
        self.layers = [self._layer_info(p) for p in range(info.param_layers)]

    def _run(self, request: Request) -> Reply:
        reply = self.transport.execute(request)
        if reply.status != 0:
            raise CommandError(Command(request.command).name, reply.status)
        return reply

    def info(self) -> BoardInfo:
        return read_info(self.transport)

    def _layer_info(self, ordinal: int) -> ParamLayer:
        r = self._run(Request(Command.LAYER_INFO, (ordinal, 0, 0, 0))).results
        return ParamLayer(r[0], r[1], r[2], bool(r[3]))

    def _sample(self, x: np.ndarray) -> bytes:
        x = np.asarray(x, dtype=np.float32)
        if x.shape != (self.arch.input_len, self.arch.input_ch):
            raise ValueError(f"a sample must have shape ({self.arch.input_len}, {self.arch.input_ch}), got {x.shape}")
        return x.astype("<f4").tobytes()

    def load_sample(self, x: np.ndarray) -> None:
        self._run(Request(Command.LOAD_SAMPLE, data=self._sample(x)))

    def set_trainable(self, trainable_layers: int) -> None:
        self._run(Request(Command.SET_TRAINABLE, (trainable_layers, 0, 0, 0)))

    def predict(self, x: np.ndarray) -> tuple[int, np.ndarray]:
        self.load_sample(x)
        reply = self._run(Request(Command.PREDICT))
        return reply.results[0], floats(reply.data)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.predict(x)[1]

    def accumulate(self, x: np.ndarray, label: int) -> float:
        if not 0 <= int(label) < self.arch.num_classes:
            raise ValueError(f"label {label} is outside 0..{self.arch.num_classes - 1}")
        self.load_sample(x)
        return self.train_loaded_sample(label)

    def train_loaded_sample(self, label: int) -> float:
        """Forward, backward and accumulate the window loaded last; returns its loss."""
        return self._run(Request(Command.TRAIN_SAMPLE, (int(label), 0, 0, 0))).result_f

    # -- the dataset region: windows stored in bulk, trained and predicted by one command each --------------

    def _records(self, xs: np.ndarray, labels: np.ndarray | None) -> bytes:
        xs = np.asarray(xs, dtype=np.float32)
        if xs.ndim != 3 or xs.shape[1:] != (self.arch.input_len, self.arch.input_ch):
            raise ValueError(f"windows must have shape (N, {self.arch.input_len}, {self.arch.input_ch}), "
                             f"got {xs.shape}")
        ys = np.zeros(len(xs), dtype=np.int64) if labels is None else np.asarray(labels)
        if ys.shape != (len(xs),):
            raise ValueError(f"{len(xs)} windows need {len(xs)} labels, got shape {ys.shape}")
        bad = ys[(ys < 0) | (ys >= self.arch.num_classes)]
        if bad.size:
            raise ValueError(f"label {bad[0]} is outside 0..{self.arch.num_classes - 1}")
        records = np.empty(len(xs), dtype=[("window", "<f4", (self.arch.input_size,)), ("label", "<u4")])
        records["window"] = xs.reshape(len(xs), -1)
        records["label"] = ys
        return records.tobytes()

    def store_windows(self, xs: np.ndarray, labels: np.ndarray | None = None, first: int = 0) -> None:
        """Put windows ``(N, input_len, input_ch)`` and their labels (0 when None) into records
        ``first..first+N-1`` of the dataset region: one memory transfer on a simulator, STORE_DATASET
        commands of a data area each over the UART."""
        if first < 0 or first + len(xs) > self.dataset_windows:
            raise ValueError(f"records {first}..{first + len(xs) - 1} are outside the board's dataset region of "
                             f"{self.dataset_windows} windows (pyodl export --dataset-windows)")
        self.store_dataset_bytes(first * self._record_bytes, self._records(xs, labels))

    def store_dataset_bytes(self, offset: int, data: bytes) -> None:
        """Raw bytes into the dataset region at ``offset`` (records as ``odl_record_t`` lays them out)."""
        if isinstance(self.transport, DatasetMemory):
            self.transport.store_dataset(offset, data)
            return
        step = self._chunk * 4
        for k in range(0, len(data), step):
            self._run(Request(Command.STORE_DATASET, (offset + k, 0, 0, 0), data=data[k:k + step]))

    def train_batch(self, first: int, count: int, learning_rate: float) -> float:
        """TRAIN_BATCH: accumulate records ``first..first+count-1``, then one SGD step; the batch's mean loss."""
        return self._run(Request(Command.TRAIN_BATCH, (first, count, 0, 0), arg_f=float(learning_rate))).result_f

    def evaluate(self, first: int, count: int) -> np.ndarray:
        """EVALUATE: the class the firmware predicts for records ``first..first+count-1``."""
        data = self._run(Request(Command.EVALUATE, (first, count, 0, 0))).data
        if len(data) != 2 * count:
            raise ProtocolError(f"EVALUATE of {count} windows answered {len(data)} bytes")
        return np.frombuffer(data, dtype="<u2").astype(np.int64)

    def train_step(self, xs: np.ndarray, labels: np.ndarray, learning_rate: float) -> float:
        """One SGD step on a batch: with a dataset region that holds it, one store and one TRAIN_BATCH
        (the same weights as a window at a time), else a window at a time."""
        if not 0 < len(xs) <= self.dataset_windows or len(xs) != len(labels):
            return super().train_step(xs, labels, learning_rate)
        try:
            self.store_windows(xs, labels)
            return self.train_batch(0, len(xs), learning_rate)
        except BaseException:
            self._drop_batch()  # TRAIN_BATCH drops a refused batch; a refusal before it may leave samples
            raise

    def predict_classes(self, xs: np.ndarray) -> np.ndarray:
        """The class the firmware picks for every sample (its own argmax): EVALUATE of as many windows as the
        dataset region and the reply hold at a time, or a window at a time without a region."""
        if not self.dataset_windows:
            return np.array([self.predict(x)[0] for x in xs], dtype=np.int64)
        per = min(self.dataset_windows, self._chunk * 4 // 2)  # a class is a u16 of the reply's data
        parts = [np.zeros(0, dtype=np.int64)]
        for k in range(0, len(xs), per):
            chunk = xs[k:k + per]
            self.store_windows(chunk)
            parts.append(self.evaluate(0, len(chunk)))
        return np.concatenate(parts)

    # -- the int8 copy (firmware/odl/odl_int8.h): calibrated, quantized and run on the device ---------------

    def int8_calibrate(self, xs: np.ndarray, reset: bool = False) -> int:
        """CALIBRATE: widen the int8 ranges with a float forward pass of each window, stored in the dataset
        region as many at a time as it holds; ``reset`` forgets the ranges first. Returns the windows
        calibrated since the last reset."""
        if not self.dataset_windows:
            raise ValueError("this firmware has no dataset region to calibrate on: export it with "
                             "--dataset-windows N (N >= 1)")
        calibrated = 0
        for k in range(0, max(len(xs), 1), self.dataset_windows):
            chunk = xs[k:k + self.dataset_windows]
            if len(chunk):
                self.store_windows(chunk)
            first_reset = int(reset and k == 0)
            calibrated = self._run(Request(Command.CALIBRATE, (0, len(chunk), first_reset, 0))).results[0]
        return calibrated

    def int8_quantize(self, bits: tuple[int, ...] | list[int]) -> int:
        """QUANTIZE with the weight width of each parameter layer; returns the int8 image's bytes."""
        return self._run(Request(Command.QUANTIZE, data=bytes(int(b) for b in bits))).results[0]

    def int8_predict(self, x: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
        """PREDICT_Q: the class, the int8 logits and the int8 probabilities of one window."""
        reply = self._run(Request(Command.PREDICT_Q, data=self._sample(x)))
        n = self.arch.num_classes
        if len(reply.data) != 2 * n:
            raise ProtocolError(f"PREDICT_Q answered {len(reply.data)} bytes, expected {2 * n}")
        scores = np.frombuffer(reply.data, np.int8)
        return reply.results[0], scores[:n].copy(), scores[n:].copy()

    def int8_predict_adaptive(self, x: np.ndarray, cheap_len: int, threshold: int) -> Adaptive:
        """PREDICT_A: the cheap mode on the newest ``cheap_len`` rows, the whole window when its confidence
        (probability * 256) is below ``threshold`` (256: always)."""
        r = self._run(Request(Command.PREDICT_A, (int(cheap_len), int(threshold), 0, 0), data=self._sample(x))).results
        return Adaptive(r[0], bool(r[1]), r[2], r[3])

    def int8_predict_classes(self, xs: np.ndarray) -> np.ndarray:
        """EVALUATE_Q: the int8 model's class for every window, as many per command as the region holds."""
        if not self.dataset_windows:
            return np.array([self.int8_predict(x)[0] for x in xs], dtype=np.int64)
        per = min(self.dataset_windows, self._chunk * 4 // 2)
        parts = [np.zeros(0, dtype=np.int64)]
        for k in range(0, len(xs), per):
            chunk = xs[k:k + per]
            self.store_windows(chunk)
            data = self._run(Request(Command.EVALUATE_Q, (0, len(chunk), 0, 0))).data
            if len(data) != 2 * len(chunk):
                raise ProtocolError(f"EVALUATE_Q of {len(chunk)} windows answered {len(data)} bytes")
            parts.append(np.frombuffer(data, dtype="<u2").astype(np.int64))
        return np.concatenate(parts)

    def int8_image(self) -> bytes:
        """GET_QIMAGE, a data area at a time: the int8 model (:func:`pyodl.model.quantized.parse_image`)."""
        step = self._chunk * 4
        first = self._run(Request(Command.GET_QIMAGE, (0, 0, 0, 0)))
        total = first.results[0]
        parts = []
        for offset in range(0, total, step):
            count = min(step, total - offset)
            reply = self._run(Request(Command.GET_QIMAGE, (offset, count, 0, 0)))
            if len(reply.data) != count or reply.results[0] != total:
                raise ProtocolError(f"GET_QIMAGE at {offset} answered {len(reply.data)} of {count} bytes")
            parts.append(reply.data)
        return b"".join(parts)

    # -- a stream: the device decides which windows to ask the teacher about, and trains on its replay buffer

    def stream_start(self, setup: StreamSetup) -> int:
        """STREAM_START: a new stream with this policy and replay training; returns the replay buffer's size
        (the dataset region)."""
        if not self.dataset_windows:
            raise ValueError("this firmware has no dataset region for a replay buffer: build it with "
                             "--dataset-windows N")
        setup.check(self.dataset_windows)
        policy = setup.policy
        values = {"policy.policy": int(policy.policy), "policy.rate": policy.rate, "policy.threshold": policy.threshold,
                  "policy.step": policy.step, "policy.disagree_target": policy.disagree_target,
                  "policy.explore": policy.explore, "policy.seed": policy.seed,
                  "policy.drift_window": policy.drift_window, "policy.drift_on": policy.drift_on,
                  "policy.drift_off": policy.drift_off,
                  "train_every": setup.train_every, "batch": setup.batch, "replay_seed": setup.replay_seed,
                  "learning_rate": setup.learning_rate, "self_label": setup.self_label,
                  "drift_learning_rate": setup.drift_learning_rate}
        data = struct.pack(STREAM_SETUP_FORMAT, *(values[name] for name in STREAM_SETUP))
        return self._run(Request(Command.STREAM_START, data=data)).results[0]

    def stream_window(self, x: np.ndarray) -> Decision:
        """STREAM_WINDOW: the device takes the training step due, then predicts an unlabelled window and decides
        whether to query its label."""
        r = self._run(Request(Command.STREAM_WINDOW, data=self._sample(x)))
        flags = r.results[0]
        loss, threshold = struct.unpack("<2f", struct.pack("<2I", r.results[1], r.results[2]))
        return Decision(flags & 0xFFFF, bool(flags >> 16 & 1), bool(flags >> 18 & 1), threshold, r.result_f,
                        bool(flags >> 17 & 1), loss)

    def stream_label(self, label: int) -> Answer:
        """STREAM_LABEL: the teacher's label for the window queried last."""
        if not 0 <= int(label) < self.arch.num_classes:
            raise ValueError(f"label {label} is outside 0..{self.arch.num_classes - 1}")
        r = self._run(Request(Command.STREAM_LABEL, (int(label), 0, 0, 0)))
        return Answer(bool(r.results[0]), r.results[1])

    def sgd_step(self, learning_rate: float) -> None:
        self._run(Request(Command.SGD_STEP, arg_f=float(learning_rate)))

    def zero_grads(self) -> None:
        self._run(Request(Command.ZERO_GRADS))

    def _read_layer(self, layer: ParamLayer) -> np.ndarray:
        total = layer.weights + layer.bias
        parts = []
        for offset in range(0, total, self._chunk):
            count = min(self._chunk, total - offset)
            parts.append(floats(self._run(Request(Command.GET_PARAMS, (layer.index, offset, count, 0))).data))
        return np.concatenate(parts)

    def get_params(self) -> Params:
        out = []
        for layer in self.layers:
            flat = self._read_layer(layer)
            spec = self.arch.layers[layer.index]
            out.append((flat[: layer.weights].reshape(spec.weight_shape), flat[layer.weights :].copy()))
        return out

    def _read_optim(self, layer: ParamLayer) -> tuple[int, np.ndarray]:
        """GET_OPTIM a data area at a time: the step count and the layer's slots."""
        first = self._run(Request(Command.GET_OPTIM, (layer.index, 0, 0, 0))).results
        steps, total = first[0], first[1]
        parts = [np.zeros(0, np.float32)]
        for offset in range(0, total, self._chunk):
            count = min(self._chunk, total - offset)
            reply = self._run(Request(Command.GET_OPTIM, (layer.index, offset, count, 0)))
            if len(reply.data) != 4 * count:
                raise ProtocolError(f"GET_OPTIM at {offset} answered {len(reply.data)} of {4 * count} bytes")
            parts.append(floats(reply.data))
        return steps, np.concatenate(parts)

    def get_optimizer_state(self, trainable_layers: int) -> OptimizerState:
        layers = self.layers[len(self.layers) - trainable_layers:]
        read = [self._read_optim(layer) for layer in layers]
        shapes = [(self.arch.layers[layer.index].weight_shape, self.arch.layers[layer.index].bias_shape)
                  for layer in layers]
        n = layers[0].weights + layers[0].bias
        return OptimizerState.from_layer_floats(read[-1][0], read[0][1].size // n if n else 0, shapes,
                                                [flat for _, flat in read])

    def set_optimizer_state(self, state: OptimizerState) -> None:
        """SET_OPTIM a data area at a time, every layer checked first; the step count travels with each write
        (and alone, with no data, when there is no slot)."""
        trained = len(state.slots[0]) if state.slots else 0
        layers = self.layers[len(self.layers) - trained:] if trained else []
        flats = [state.layer_floats(j).astype("<f4") for j in range(trained)]
        for layer, flat in zip(layers, flats, strict=True):
            total = self._run(Request(Command.GET_OPTIM, (layer.index, 0, 0, 0))).results[1]
            if flat.size != total:
                raise ValueError(f"layer {layer.index} keeps {total} floats of optimizer state, got {flat.size}")
            if not np.isfinite(flat).all():
                raise ValueError(f"layer {layer.index}: optimizer state must be finite")
        steps = int(state.steps)
        self._run(Request(Command.SET_OPTIM, (self.layers[-1].index, 0, steps, 0)))
        for layer, flat in zip(layers, flats, strict=True):
            for offset in range(0, flat.size, self._chunk):
                chunk = flat[offset:offset + self._chunk]
                self._run(Request(Command.SET_OPTIM, (layer.index, offset, steps, 0), data=chunk.tobytes()))

    def save(self) -> tuple[int, int]:
        """Store the personalization (every parameter layer kept in RAM, the optimizer state, the trained
        layer count) in the flash slot that does not hold the newest copy; returns (slot, sequence), slot 0
        for A and 1 for B. A power cut at any moment leaves the previous copy loadable."""
        r = self._run(Request(Command.SAVE)).results
        return r[0], r[1]

    def load(self) -> tuple[int, int]:
        """Bring back the newest valid copy from flash (as boot does); returns (slot, sequence)."""
        r = self._run(Request(Command.LOAD)).results
        return r[0], r[1]

    def set_params(self, params: Params) -> None:
        """Writes every layer the build keeps in RAM; a frozen layer must already hold the same values."""
        if len(params) != len(self.layers):
            raise ValueError(f"{len(params)} parameter layers given, the model has {len(self.layers)}")
        # Every layer is checked before any is written: a refusal of a later chunk or layer by the firmware
        # would leave the model half-written.
        flats = []
        for layer, (w, b) in zip(self.layers, params, strict=True):
            flat = np.concatenate([np.ravel(w), np.ravel(b)]).astype("<f4")
            if not np.all(np.abs(flat) <= self._param_bound):
                raise ValueError(f"layer {layer.index}: parameters must be finite and within +-{self._param_bound:g} "
                                 "(the bound this firmware was exported with)")
            if flat.size != layer.weights + layer.bias:
                raise ValueError(f"layer {layer.index} takes {layer.weights} + {layer.bias} values, got {flat.size}")
            flats.append(flat)
        for layer, flat in zip(self.layers, flats, strict=True):
            if layer.frozen:
                if not np.array_equal(self._read_layer(layer), flat):
                    raise CommandError(f"SET_PARAMS (layer {layer.index} is frozen in flash and differs)",
                                       STATUS_FROZEN)
                continue
            for offset in range(0, flat.size, self._chunk):
                chunk = flat[offset : offset + self._chunk]
                self._run(Request(Command.SET_PARAMS, (layer.index, offset, 0, 0), data=chunk.tobytes()))
