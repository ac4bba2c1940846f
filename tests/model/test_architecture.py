import numpy as np
import pytest

from pyodl.model.architecture import (
    PAPER_INPUT_LENGTHS,
    Architecture,
    Kind,
    LayerSpec,
    Model,
    ModelError,
    glorot_params,
    paper_architecture,
    paper_model,
)


@pytest.mark.parametrize("t", PAPER_INPUT_LENGTHS)
def test_paper_model_has_the_papers_parameter_count(t: int) -> None:
    arch = paper_architecture(t)
    assert arch.param_count == 10_084
    assert arch.num_classes == 6
    assert [la.kind for la in arch.layers] == [Kind.CONV1D, Kind.AVGPOOL1D, Kind.CONV1D, Kind.AVGPOOL1D,
                                               Kind.GAP1D, Kind.DENSE, Kind.DENSE]


def test_pools_round_down_like_keras() -> None:
    arch = paper_architecture(40)
    # 40 -conv3-> 38 -pool2-> 19 -conv3-> 17 -pool2-> 8 (the odd 17 loses its last column)
    assert [la.out_len for la in arch.layers] == [38, 19, 17, 8, 1, 1, 1]


def _arch(specs: list[LayerSpec], t: int = 10, c: int = 3) -> Architecture:
    return Architecture.build("t", t, c, specs)


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([LayerSpec(Kind.CONV1D, "c", 4, 11), LayerSpec(Kind.GAP1D, "g"), LayerSpec(Kind.DENSE, "d", 2, 0, "softmax")],
         "kernel_size 11 is longer"),
        ([LayerSpec(Kind.AVGPOOL1D, "p", 0, 11), LayerSpec(Kind.FLATTEN, "f"),
          LayerSpec(Kind.DENSE, "d", 2, 0, "softmax")],
         "leaves no output"),
        ([LayerSpec(Kind.FLATTEN, "f"), LayerSpec(Kind.DENSE, "d", 4, 0, "softmax"), LayerSpec(Kind.DENSE, "e", 2)],
         "softmax is only supported as the last layer"),
        ([LayerSpec(Kind.FLATTEN, "f"), LayerSpec(Kind.DENSE, "d", 4)], "must end in softmax"),
        ([LayerSpec(Kind.DENSE, "d", 4, 0, "softmax")],
         "put Flatten, GlobalAveragePooling1D or GlobalMaxPooling1D before it"),
        ([LayerSpec(Kind.GMP1D, "g", stride=2), LayerSpec(Kind.DENSE, "d", 2, 0, "softmax")],
         "strides, dilation_rate and padding apply to Conv1D and pools only"),
        ([LayerSpec(Kind.FLATTEN, "f"), LayerSpec(Kind.DENSE, "d", 4, 0, "elu")], "activation 'elu'"),
        ([LayerSpec(Kind.FLATTEN, "f"), LayerSpec(Kind.SOFTMAX, "s")], "nothing to train"),
    ],
)
def test_unsupported_architectures_are_refused_by_name(specs: list[LayerSpec], message: str) -> None:
    with pytest.raises(ModelError, match=message):
        _arch(specs)


def test_global_max_pool_keeps_the_channels_of_any_length() -> None:
    arch = _arch([LayerSpec(Kind.CONV1D, "c", 5, 3), LayerSpec(Kind.GMP1D, "g"),
                  LayerSpec(Kind.DENSE, "d", 2, 0, "softmax")], t=13)
    gmp = arch.layers[1]
    assert (gmp.in_len, gmp.in_ch, gmp.out_len, gmp.out_ch, gmp.size) == (11, 5, 1, 5, 0)
    assert gmp.describe() == "g: GlobalMaxPool1D (11, 5) -> (1, 5)"
    assert not gmp.has_params and arch.param_layers == [0, 2]
    gap = _arch([LayerSpec(Kind.CONV1D, "c", 5, 3), LayerSpec(Kind.GAP1D, "g"),
                 LayerSpec(Kind.DENSE, "d", 2, 0, "softmax")], t=13)
    params = glorot_params(arch, 0)
    assert Model(arch, params).digest() != Model(gap, params).digest()  # another model on the device


def test_glorot_init_is_deterministic_and_in_keras_range() -> None:
    a, b = paper_model(40, seed=3), paper_model(40, seed=3)
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a.params, b.params, strict=True))
    assert a.digest() == b.digest()
    assert a.digest() != paper_model(40, seed=4).digest()
    w, bias = a.params[0]  # Conv1D(32, 3) on 3 channels: fan_in 9, fan_out 96
    assert np.abs(w).max() <= np.sqrt(6 / (9 + 96)) and not bias.any()


def test_model_checks_parameter_shapes_and_values() -> None:
    arch = paper_architecture(20)
    params = glorot_params(arch, 0)
    with pytest.raises(ModelError, match="expected parameters for 4 layers"):
        Model(arch, params[:3])
    bad = list(params)
    bad[1] = (bad[1][0][:, :, :10], bad[1][1])
    with pytest.raises(ModelError, match=r"conv1d_2.*expected"):
        Model(arch, bad)
    bad = list(params)
    bad[2] = (np.full_like(bad[2][0], np.nan), bad[2][1])
    with pytest.raises(ModelError, match=r"dense_1.*NaN"):
        Model(arch, bad)


def test_first_trained_counts_parameter_layers_from_the_output() -> None:
    arch = paper_architecture(40)
    assert arch.first_trained(4) == 0
    assert arch.first_trained(2) == 5
    with pytest.raises(ModelError, match="between 1 and 4"):
        arch.first_trained(5)
