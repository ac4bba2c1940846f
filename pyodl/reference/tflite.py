"""The device's int8 model as a TensorFlow Lite flatbuffer, run by TFLite's reference kernels: what the int8
firmware is checked against.

:func:`build_flatbuffer` writes the model operator by operator with TFLite's own schema (no converter: the
converter would choose its own scales; here every scale, zero point, weight and bias is the device's, read
back from its int8 image). One float layer becomes the operators the TFLite converter makes of it:

- Conv1D: RESHAPE to (1, 1, L, C), [PAD], CONV_2D (filter (F, 1, K, C)), RESHAPE back;
- DepthwiseConv1D, and BatchNormalization as a kernel of one tap: the same around DEPTHWISE_CONV_2D;
- Dense: RESHAPE to (1, N), FULLY_CONNECTED; Flatten: RESHAPE;
- AvgPool1D / MaxPool1D: AVERAGE_POOL_2D / MAX_POOL_2D with SAME or VALID padding (TFLite, like Keras,
  averages only what exists of a window); GlobalAveragePooling1D: MEAN over the length; GlobalMaxPooling1D:
  REDUCE_MAX over the length (what the converter makes of Keras's reduce_max; output parameters the input's);
- ReLU, ReLU6: RELU, RELU6 (fused into the layer before when Keras fused them); tanh, sigmoid, LeakyReLU:
  TANH, LOGISTIC, LEAKY_RELU, after the layer they were fused into (whose output then has its own scale);
- the final softmax: SOFTMAX (output 1/256, -128).

The input is float32 and goes through QUANTIZE, so TFLite and the device start from the same float window.
A padded convolution gets an explicit PAD, which pads with the input's zero point: the products of those
rows vanish, as the device skips them.

Runs use ``OpResolverType.BUILTIN_REF``: the reference kernels. The default resolver's optimized kernels
(XNNPACK, ruy) round differently and differ by 1-3 LSB.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np

from pyodl.model.architecture import Kind, Layer
from pyodl.model.quantized import QParams, QuantizedModel

# The activation a CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED fuses (schema ActivationFunctionType); tanh,
# sigmoid and LeakyReLU follow as operators of their own.
_FUSED = {"none": 0, "relu": 1, "relu6": 3, "softmax": 0, "tanh": 0, "sigmoid": 0, "leaky_relu": 0}
TABLED = ("tanh", "sigmoid", "leaky_relu")


@dataclass(frozen=True)
class Run:
    """One window through the TFLite model: the int8 logits and probabilities, and every layer's output."""

    logits: np.ndarray
    probs: np.ndarray
    layer_outputs: tuple[np.ndarray, ...]  # int8, flattened, one per float layer


class _Builder:
    def __init__(self) -> None:
        from tensorflow.lite.python import schema_py_generated as schema

        self.s = schema
        self.model = schema.ModelT()
        self.model.version = 3
        self.model.description = "pyodl int8 reference"
        self.model.buffers = [schema.BufferT()]  # buffer 0: the empty one every tensor without data uses
        self.model.operatorCodes = []
        self.graph = schema.SubGraphT()
        self.graph.tensors = []
        self.graph.operators = []
        self._codes: dict[int, int] = {}

    def tensor(self, shape: tuple[int, ...], ttype: int, name: str, data: np.ndarray | None = None,
               scale: np.ndarray | float | None = None, zero_point: np.ndarray | int | None = None,
               axis: int = 0) -> int:
        t = self.s.TensorT()
        t.shape = list(shape)
        t.type = ttype
        t.name = name
        if data is not None:
            buf = self.s.BufferT()
            buf.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
            self.model.buffers.append(buf)
            t.buffer = len(self.model.buffers) - 1
        if scale is not None:
            q = self.s.QuantizationParametersT()
            q.scale = np.atleast_1d(np.asarray(scale, np.float32)).tolist()
            q.zeroPoint = np.atleast_1d(np.asarray(zero_point, np.int64)).tolist()
            q.quantizedDimension = axis
            t.quantization = q
        self.graph.tensors.append(t)
        return len(self.graph.tensors) - 1

    def act(self, shape: tuple[int, ...], p: QParams, name: str) -> int:
        return self.tensor(shape, self.s.TensorType.INT8, name, scale=p.scale, zero_point=p.zero_point)

    def const_i32(self, values: list[int] | np.ndarray, name: str) -> int:
        v = np.asarray(values, "<i4")
        return self.tensor(v.shape, self.s.TensorType.INT32, name, data=v)

    def op(self, code: int, version: int, inputs: list[int], outputs: list[int], options_type: int = 0,
           options: object = None) -> None:
        if code not in self._codes:
            oc = self.s.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)
            oc.version = version
            self.model.operatorCodes.append(oc)
            self._codes[code] = len(self.model.operatorCodes) - 1
        o = self.s.OperatorT()
        o.opcodeIndex = self._codes[code]
        o.inputs = inputs
        o.outputs = outputs
        o.builtinOptionsType = options_type
        o.builtinOptions = options
        self.graph.operators.append(o)

    def reshape(self, src: int, shape: tuple[int, ...], p: QParams, name: str) -> int:
        out = self.act(shape, p, name)
        opts = self.s.ReshapeOptionsT()
        opts.newShape = list(shape)
        self.op(self.s.BuiltinOperator.RESHAPE, 1, [src, self.const_i32(list(shape), name + "/shape")], [out],
                self.s.BuiltinOptions.ReshapeOptions, opts)
        return out

    def finish(self, inputs: list[int], outputs: list[int]) -> bytes:
        from tensorflow.lite.tools import flatbuffer_utils

        self.graph.inputs = inputs
        self.graph.outputs = outputs
        self.graph.name = "main"
        self.model.subgraphs = [self.graph]
        return bytes(flatbuffer_utils.convert_object_to_bytearray(self.model))


def _activation(b: _Builder, layer: Layer, x: int, out: QParams, shape: tuple[int, ...], name: str) -> int:
    """TANH, LOGISTIC or LEAKY_RELU from ``x`` to a new tensor of parameters ``out``."""
    s = b.s
    y = b.act(shape, out, name)
    if layer.activation == "tanh":
        b.op(s.BuiltinOperator.TANH, 2, [x], [y])
    elif layer.activation == "sigmoid":
        b.op(s.BuiltinOperator.LOGISTIC, 2, [x], [y])
    else:
        opts = s.LeakyReluOptionsT()
        opts.alpha = float(layer.alpha)
        b.op(s.BuiltinOperator.LEAKY_RELU, 2, [x], [y], s.BuiltinOptions.LeakyReluOptions, opts)
    return y


def _conv(b: _Builder, layer: Layer, index: int, qm: QuantizedModel, x: int) -> int:
    """Conv1D, DepthwiseConv1D or BatchNormalization (a depthwise kernel of one tap)."""
    s = b.s
    q = qm.layers[index]
    p_in = qm.input_params(index)
    name = layer.name
    assert q.weights is not None and q.w_scale is not None and q.bias is not None
    bn = layer.kind is Kind.BATCHNORM
    size, stride, dilation, pad = (1, 1, 1, 0) if bn else (layer.size, layer.stride, layer.dilation, layer.pad)
    x4 = b.reshape(x, (1, 1, layer.in_len, layer.in_ch), p_in, name + "/in4d")
    padded_len = (layer.out_len - 1) * stride + dilation * (size - 1) + 1
    after = max(padded_len - layer.in_len - pad, 0)
    if pad or after:
        xp = b.act((1, 1, layer.in_len + pad + after, layer.in_ch), p_in, name + "/padded")
        b.op(s.BuiltinOperator.PAD, 2, [x4, b.const_i32([[0, 0], [0, 0], [pad, after], [0, 0]], name + "/pads")],
             [xp], s.BuiltinOptions.PadOptions, s.PadOptionsT())
        x4 = xp
    linear = q.pre or q.out
    y4 = b.act((1, 1, layer.out_len, layer.out_ch), linear, name + "/out4d")
    bias = b.tensor((layer.out_ch,), s.TensorType.INT32, name + "/bias", data=q.bias.astype("<i4"),
                    scale=np.float32(p_in.scale) * q.w_scale, zero_point=np.zeros(layer.out_ch, np.int64))
    fused = _FUSED[layer.activation]
    if layer.kind is Kind.CONV1D:
        w = q.weights.reshape(layer.out_ch, 1, layer.size, layer.in_ch)
        wt = b.tensor(w.shape, s.TensorType.INT8, name + "/filter", data=w, scale=q.w_scale,
                      zero_point=np.zeros(layer.out_ch, np.int64), axis=0)
        opts = s.Conv2DOptionsT()
        opts.padding, opts.strideW, opts.strideH = s.Padding.VALID, stride, 1
        opts.dilationWFactor, opts.dilationHFactor, opts.fusedActivationFunction = dilation, 1, fused
        b.op(s.BuiltinOperator.CONV_2D, 3, [x4, wt, bias], [y4], s.BuiltinOptions.Conv2DOptions, opts)
    else:
        w = q.weights.reshape(1, 1, size, layer.out_ch)
        wt = b.tensor(w.shape, s.TensorType.INT8, name + "/filter", data=w, scale=q.w_scale,
                      zero_point=np.zeros(layer.out_ch, np.int64), axis=3)
        opts = s.DepthwiseConv2DOptionsT()
        opts.padding, opts.strideW, opts.strideH = s.Padding.VALID, stride, 1
        opts.dilationWFactor, opts.dilationHFactor = dilation, 1
        opts.depthMultiplier, opts.fusedActivationFunction = layer.out_ch // layer.in_ch, fused
        b.op(s.BuiltinOperator.DEPTHWISE_CONV_2D, 3, [x4, wt, bias], [y4],
             s.BuiltinOptions.DepthwiseConv2DOptions, opts)
    if layer.activation in TABLED:
        y4 = _activation(b, layer, y4, q.out, (1, 1, layer.out_len, layer.out_ch), name + "/act4d")
    return b.reshape(y4, (1, layer.out_len, layer.out_ch), q.out, name)


def _dense(b: _Builder, layer: Layer, index: int, qm: QuantizedModel, x: int) -> int:
    s = b.s
    q = qm.layers[index]
    p_in = qm.input_params(index)
    assert q.weights is not None and q.w_scale is not None and q.bias is not None
    x2 = b.reshape(x, (1, layer.in_size), p_in, layer.name + "/in2d")
    wt = b.tensor(q.weights.shape, s.TensorType.INT8, layer.name + "/weights", data=q.weights, scale=q.w_scale,
                  zero_point=np.zeros(layer.out_ch, np.int64), axis=0)
    bias = b.tensor((layer.out_ch,), s.TensorType.INT32, layer.name + "/bias", data=q.bias.astype("<i4"),
                    scale=np.float32(p_in.scale) * q.w_scale, zero_point=np.zeros(layer.out_ch, np.int64))
    tabled = layer.activation in TABLED
    y = b.act((1, layer.out_ch), q.pre or q.out, layer.name + ("/linear" if tabled else ""))
    opts = s.FullyConnectedOptionsT()
    opts.fusedActivationFunction = _FUSED[layer.activation]
    b.op(s.BuiltinOperator.FULLY_CONNECTED, 4, [x2, wt, bias], [y], s.BuiltinOptions.FullyConnectedOptions, opts)
    return _activation(b, layer, y, q.out, (1, layer.out_ch), layer.name) if tabled else y


def _pool(b: _Builder, layer: Layer, index: int, qm: QuantizedModel, x: int) -> int:
    s = b.s
    q = qm.layers[index]
    p_in = qm.input_params(index)
    x4 = b.reshape(x, (1, 1, layer.in_len, layer.in_ch), p_in, layer.name + "/in4d")
    y4 = b.act((1, 1, layer.out_len, layer.out_ch), q.out, layer.name + "/out4d")
    opts = s.Pool2DOptionsT()
    opts.padding = s.Padding.SAME if layer.padding == "same" else s.Padding.VALID
    opts.strideW, opts.strideH, opts.filterWidth, opts.filterHeight = layer.stride, 1, layer.size, 1
    code = s.BuiltinOperator.AVERAGE_POOL_2D if layer.kind is Kind.AVGPOOL1D else s.BuiltinOperator.MAX_POOL_2D
    b.op(code, 2, [x4], [y4], s.BuiltinOptions.Pool2DOptions, opts)
    return b.reshape(y4, (1, layer.out_len, layer.out_ch), q.out, layer.name)


def _shape(layer: Layer) -> tuple[int, ...]:
    """A layer output's tensor shape: (1, N) after Dense, GAP, GMP and Flatten, (1, L, C) otherwise."""
    if layer.kind in (Kind.DENSE, Kind.GAP1D, Kind.GMP1D, Kind.FLATTEN, Kind.SOFTMAX):
        return (1, layer.out_size)
    return (1, layer.out_len, layer.out_ch)


def build_flatbuffer(qm: QuantizedModel) -> tuple[bytes, list[int], int]:
    """The TFLite model of ``qm``; returns it, the tensor index of each layer's output, and the logits'."""
    b = _Builder()
    s = b.s
    arch = qm.arch
    x_float = b.tensor((1, arch.input_len, arch.input_ch), s.TensorType.FLOAT32, "input")
    x = b.act((1, arch.input_len, arch.input_ch), qm.input, "input/int8")
    b.op(s.BuiltinOperator.QUANTIZE, 2, [x_float], [x], s.BuiltinOptions.QuantizeOptions, s.QuantizeOptionsT())
    outputs: list[int] = []
    logits, logits_layer = x, -1
    shape: tuple[int, ...] = (1, arch.input_len, arch.input_ch)
    for i, layer in enumerate(arch.layers):
        q = qm.layers[i]
        if layer.kind in (Kind.CONV1D, Kind.DEPTHWISE1D, Kind.BATCHNORM):
            x = _conv(b, layer, i, qm, x)
        elif layer.kind is Kind.DENSE:
            x = _dense(b, layer, i, qm, x)
        elif layer.kind in (Kind.AVGPOOL1D, Kind.MAXPOOL1D):
            x = _pool(b, layer, i, qm, x)
        elif layer.kind in (Kind.GAP1D, Kind.GMP1D):
            y = b.act((1, layer.out_ch), q.out, layer.name)
            opts = s.ReducerOptionsT()
            opts.keepDims = False
            code = s.BuiltinOperator.MEAN if layer.kind is Kind.GAP1D else s.BuiltinOperator.REDUCE_MAX
            b.op(code, 2, [x, b.const_i32([1], layer.name + "/axis")], [y], s.BuiltinOptions.ReducerOptions, opts)
            x = y
        elif layer.kind is Kind.FLATTEN:
            x = b.reshape(x, (1, layer.out_size), q.out, layer.name)
        elif layer.kind is Kind.ACTIVATION and layer.activation in TABLED:
            x = _activation(b, layer, x, q.out, shape, layer.name)
        elif layer.kind is Kind.RELU or (layer.kind is Kind.ACTIVATION and layer.activation == "relu6"):
            y = b.act(shape, q.out, layer.name)
            code = s.BuiltinOperator.RELU if layer.kind is Kind.RELU else s.BuiltinOperator.RELU6
            b.op(code, 2, [x], [y])
            x = y
        elif layer.kind is Kind.SOFTMAX:
            outputs.append(-1)  # its output is the model's, made below
            continue
        else:
            raise ValueError(f"layer '{layer.name}': no int8 operator for {layer.describe()}")
        outputs.append(x)
        logits, logits_layer = x, i
        if layer.kind not in (Kind.RELU, Kind.ACTIVATION):  # element-wise layers keep their input's shape
            shape = _shape(layer)
    logits_params = qm.layers[logits_layer].out
    if len(shape) != 2:
        logits = b.reshape(logits, (1, arch.num_classes), logits_params, "logits")
    probs = b.act((1, arch.num_classes), qm.softmax_out, "probs")
    opts = s.SoftmaxOptionsT()
    opts.beta = 1.0
    b.op(s.BuiltinOperator.SOFTMAX, 2, [logits], [probs], s.BuiltinOptions.SoftmaxOptions, opts)
    outputs = [probs if t == -1 else t for t in outputs]
    return b.finish([x_float], [probs]), outputs, logits


def _interpreter() -> tuple[type, type]:
    """TensorFlow's ``tf.lite`` interpreter, which TensorFlow 2.21 still ships (and warns about: LiteRT's
    ``ai-edge-litert`` package has the same kernels, but pyodl is not tested with it)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf.lite.Interpreter, tf.lite.experimental.OpResolverType


class TFLiteModel:
    """The interpreter over :func:`build_flatbuffer`'s model, reference kernels, every tensor kept."""

    def __init__(self, qm: QuantizedModel) -> None:
        self.qm = qm
        self.flatbuffer, self._outputs, self._logits = build_flatbuffer(qm)
        interpreter, resolvers = _interpreter()
        with warnings.catch_warnings():  # tf.lite's: "deprecated, use ai_edge_litert"
            warnings.filterwarnings("ignore", message=".*Interpreter is deprecated", category=UserWarning)
            self._it = interpreter(model_content=self.flatbuffer, experimental_preserve_all_tensors=True,
                                   experimental_op_resolver_type=resolvers.BUILTIN_REF)
        self._it.allocate_tensors()
        self._in = self._it.get_input_details()[0]["index"]
        self._out = self._it.get_output_details()[0]["index"]

    def run(self, x: np.ndarray) -> Run:
        arch = self.qm.arch
        self._it.set_tensor(self._in, np.asarray(x, np.float32).reshape(1, arch.input_len, arch.input_ch))
        self._it.invoke()
        outs = tuple(self._it.get_tensor(t).reshape(-1).copy() for t in self._outputs)
        return Run(self._it.get_tensor(self._logits).reshape(-1).copy(),
                   self._it.get_tensor(self._out).reshape(-1).copy(), outs)
