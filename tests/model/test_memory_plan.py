import pytest

from pyodl.model.architecture import PAPER_INPUT_LENGTHS, Architecture, Kind, LayerSpec, paper_architecture
from pyodl.model.memory_plan import INPUT, LOGITS, PROBS, SCRATCH, plan_memory
from pyodl.model.optimizer import Optimizer

STM32L496_SRAM = 320 * 1024


def _check_invariants(arch: Architecture, trainable: int | None) -> None:
    plan = plan_memory(arch, trainable)
    prev = INPUT
    for i, (layer, lp) in enumerate(zip(arch.layers, plan.layers, strict=True)):
        assert lp.input == prev, f"layer {i} does not read what layer {i - 1} wrote"
        in_place = layer.kind is Kind.FLATTEN or (layer.kind is Kind.RELU and lp.input != INPUT)
        assert (lp.output == lp.input) == in_place, f"layer {i} would overwrite its own input"
        if layer.has_params and i >= plan.first_trainable:
            # The backward pass reads a trained layer's input: it must be a buffer nothing reuses.
            assert lp.input == INPUT or lp.input.startswith("saved_")
        assert (lp.mask is not None) == (layer.masked and i >= plan.first_trainable)
        assert lp.trainable == (layer.has_params and i >= plan.first_trainable)
        prev = lp.output
    assert prev in (LOGITS, PROBS)
    scratch = plan.buffer(SCRATCH[0]).elements
    assert scratch >= plan.error_capacity
    assert all(la.out_size <= scratch for la, lp in zip(arch.layers, plan.layers, strict=True) if lp.output in SCRATCH)


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
    # Full at T=100: the conv1d_2 input (49 x 32) is saved, conv1d_1's input is the caller's window.
    assert full.buffer("saved_2").elements == 49 * 32
    assert full.buffer("mask_0").elements == (98 * 32 + 31) // 32


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
    assert plan.layers[2].output == plan.layers[1].output == "saved_4"  # ReLU and Flatten in place
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
