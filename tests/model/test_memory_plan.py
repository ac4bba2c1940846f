import numpy as np
import pytest

from pyodl.model.architecture import (
    PAPER_INPUT_LENGTHS,
    Architecture,
    Kind,
    LayerSpec,
    paper_architecture,
    random_architecture,
)
from pyodl.model.memory_plan import ARENA, INPUT, LOGITS, PROBS, MemoryPlan, plan_memory, tiling_pool
from pyodl.model.optimizer import Optimizer

STM32L496_SRAM = 320 * 1024


def _region(plan: MemoryPlan, i: int, which: str) -> tuple[int, int] | None:
    """Layer i's input or output as [start, end) in the arena, None elsewhere."""
    lp, layer = plan.layers[i], plan.arch.layers[i]
    name, at, size = (lp.input, lp.in_at, layer.in_size) if which == "in" else (lp.output, lp.out_at, layer.out_size)
    return (at, at + size) if name == ARENA else None


def _overlap(a: tuple[int, int] | None, b: tuple[int, int] | None) -> bool:
    return a is not None and b is not None and a[0] < b[1] and b[0] < a[1]


def _check_invariants(arch: Architecture, trainable: int | None) -> None:
    """The arena contract firmware/odl/network.c relies on, checked step by step through a forward and a
    backward pass: nothing a layer writes (its output; in the backward pass dL/d(input), over its input)
    lands on anything still to be read."""
    plan = plan_memory(arch, trainable)
    arena = plan.buffer(ARENA).elements
    prev, prev_at = INPUT, 0
    for i, (layer, lp) in enumerate(zip(arch.layers, plan.layers, strict=True)):
        assert (lp.input, lp.in_at) == (prev, prev_at), f"layer {i} does not read what layer {i - 1} wrote"
        in_place = layer.kind is Kind.FLATTEN or (
            lp.input != INPUT and (layer.kind in (Kind.RELU, Kind.ACTIVATION)
                                   or (lp.input == ARENA and tiling_pool(layer) and lp.output == ARENA)))
        assert ((lp.output, lp.out_at) == (lp.input, lp.in_at)) == in_place, f"layer {i} in place or not"
        if not in_place:
            assert not _overlap(_region(plan, i, "in"), _region(plan, i, "out")), f"layer {i} overlaps its input"
        out = _region(plan, i, "out")
        assert out is None or out[1] <= arena
        if layer.has_params and i >= plan.first_trainable:
            # The backward pass reads a trained layer's input: the tensor must be kept (saved) until then.
            assert lp.input == INPUT or plan.layers[i - 1].saved
        assert (lp.mask is not None) == (layer.masked and i >= plan.first_trainable)
        assert lp.trainable == (layer.has_params and i >= plan.first_trainable)
        prev, prev_at = lp.output, lp.out_at
    assert prev in (LOGITS, PROBS)

    n = len(arch.layers)
    # Where a saved tensor's reader is: its region must stay intact until that reader's backward pass.
    readers = {j: next(k for k in range(j + 1, n) if plan.layers[k].trainable) for j in range(n)
               if plan.layers[j].saved}
    for i in range(n):  # forward: layer i writes its output
        if plan.layers[i].output == ARENA and plan.layers[i].output != plan.layers[i].input:
            for j in readers:  # every saved tensor is still to be read
                if j < i:
                    assert not _overlap(_region(plan, i, "out"), _region(plan, j, "out")), (i, j)
    for i in range(n - 1, plan.first_trainable, -1):  # backward: dL/d(input) over layer i's input
        dx = _region(plan, i, "in")
        lp = plan.layers[i]
        if (lp.input, lp.in_at) != (lp.output, lp.out_at):
            assert not _overlap(dx, _region(plan, i, "out")), f"layer {i}'s dx overwrites its dL/d(output)"
        for j, reader in readers.items():
            if reader < i and _region(plan, j, "out") != dx:
                assert not _overlap(dx, _region(plan, j, "out")), f"layer {i}'s dx overwrites saved tensor {j}"


@pytest.mark.parametrize("t", PAPER_INPUT_LENGTHS)
@pytest.mark.parametrize("trainable", [None, 2])
def test_paper_plan_is_consistent_and_fits_the_stm32l496(t: int, trainable: int | None) -> None:
    arch = paper_architecture(t)
    _check_invariants(arch, trainable)
    assert plan_memory(arch, trainable).ram_bytes() < STM32L496_SRAM


def test_tl_keeps_frozen_parameters_in_flash_and_saves_less() -> None:
    arch = paper_architecture(100)
    full, tl = plan_memory(arch), plan_memory(arch, 2)
    assert full.flash_param_bytes() == 0
    conv_params = arch.layers[0].param_count + arch.layers[2].param_count
    assert tl.flash_param_bytes() == conv_params * 4
    assert tl.section_bytes()[".odl_params"] == full.section_bytes()[".odl_params"] - conv_params * 4
    assert tl.section_bytes()[".odl_saved"] < full.section_bytes()[".odl_saved"]
    assert full.buffer("mask_0").elements == (98 * 32 + 31) // 32
    # Full at T=100: conv1d_1's output (98 x 32) first; avgpool1d_1 in place keeps its first 49 x 32 as
    # conv1d_2's saved input; conv1d_2's output (47 x 64) right above; avgpool1d_2 in place on it; GAP's and
    # dense_1's outputs (saved for the Dense layers) above its 23 x 64. The arena is the peak: 49 x 32 + 47 x 64.
    assert [(lp.output, lp.out_at) for lp in full.layers] == [
        (ARENA, 0), (ARENA, 0), (ARENA, 1568), (ARENA, 1568), (ARENA, 1568 + 1472), (ARENA, 3040 + 64), (LOGITS, 0)]
    assert [lp.saved for lp in full.layers] == [False, True, False, False, True, True, False]
    assert full.buffer(ARENA).elements == 1568 + 3008 == 4576
    assert tl.buffer(ARENA).elements == 4576  # the peak is in the forward pass


def test_standalone_relu_flatten_and_softmax_layers() -> None:
    arch = Architecture.build("mixed", 6, 2, [
        LayerSpec(Kind.RELU, "relu_in"),  # on the caller's window: must not be done in place
        LayerSpec(Kind.CONV1D, "c", 3, 2),
        LayerSpec(Kind.RELU, "r"),
        LayerSpec(Kind.FLATTEN, "f"),
        LayerSpec(Kind.DENSE, "d", 4),
        LayerSpec(Kind.SOFTMAX, "s"),
    ])
    for trainable in (None, 1):
        _check_invariants(arch, trainable)
    plan = plan_memory(arch)
    assert plan.layers[0].output != INPUT
    assert (plan.layers[2].output, plan.layers[2].out_at) == (plan.layers[1].output, plan.layers[1].out_at)
    assert plan.layers[1].output == ARENA and plan.layers[1].saved  # ReLU and Flatten in place on the Dense's input
    assert plan.layers[4].output == LOGITS and plan.layers[5].output == PROBS


def test_a_global_max_pool_keeps_a_tie_mask_only_where_the_backward_pass_reaches() -> None:
    """A bit per input element (every maximum shares the gradient, so an index would not do), in .odl_saved, for
    a GlobalMaxPool1D at or above the lowest trained layer."""
    arch = Architecture.build("gmp", 40, 3, [
        LayerSpec(Kind.CONV1D, "c", 7, 3, activation="relu"),  # 38 x 7 = 266 elements: 9 words
        LayerSpec(Kind.GMP1D, "g"),
        LayerSpec(Kind.DENSE, "d", 2, 0, "softmax"),
    ])
    for trainable in (None, 1):
        _check_invariants(arch, trainable)
    full, tl = plan_memory(arch), plan_memory(arch, 1)
    assert full.layers[1].argmax == "argmax_1"
    mask = full.buffer("argmax_1")
    assert (mask.section, mask.ctype, mask.elements) == (".odl_saved", "uint32_t", 9)
    assert tl.layers[1].argmax is None
    assert full.section_bytes()[".odl_saved"] - tl.section_bytes()[".odl_saved"] == 4 * 9 + 4 * 9  # and the ReLU's


@pytest.mark.parametrize("text, slots", [("sgd", 0), ("sgd:momentum=0.9,nesterov", 1), ("adam", 2)])
def test_optimizer_state_is_planned_for_trained_parameters_only(text: str, slots: int) -> None:
    arch = paper_architecture(40)
    optimizer = Optimizer.parse(text)
    for trainable in (None, 2):
        plan = plan_memory(arch, trainable, optimizer)
        trained = sum(arch.layers[i].param_count for i in arch.param_layers[-(trainable or 4):])
        assert plan.section_bytes()[".odl_optim"] == slots * trained * 4
        assert plan.ram_bytes() == plan_memory(arch, trainable).ram_bytes() + slots * trained * 4


@pytest.mark.parametrize("seed", range(60))
def test_random_architectures_keep_the_arena_contract(seed: int) -> None:
    """Strides, padding, max pools, BatchNorm, tanh and sigmoid (their saved outputs), Flatten: every layer
    the import takes, in Full and TL."""
    arch = random_architecture(np.random.default_rng(seed), f"arena{seed}", wide=seed % 2 == 1)
    for trainable in (None, 1, 2):
        _check_invariants(arch, min(trainable or len(arch.param_layers), len(arch.param_layers)))
