"""The optimizer a build trains with, as written on the command line."""

import pytest

from pyodl.model.optimizer import SGD, Optimizer


@pytest.mark.parametrize("text, kind, slots", [
    ("sgd", "ODL_OPT_SGD", 0),
    ("sgd:momentum=0", "ODL_OPT_SGD", 0),
    ("sgd:momentum=0.9", "ODL_OPT_MOMENTUM", 1),
    ("SGD: momentum=0.9, nesterov", "ODL_OPT_NESTEROV", 1),
    ("adam", "ODL_OPT_ADAM", 2),
    ("adam:beta_1=0.8,beta_2=0.99,epsilon=1e-5", "ODL_OPT_ADAM", 2),
])
def test_parse_names_the_firmware_kind_and_state(text: str, kind: str, slots: int) -> None:
    optimizer = Optimizer.parse(text)
    assert optimizer.c_kind == kind
    assert optimizer.slots == slots
    assert Optimizer.parse(optimizer.describe()) == optimizer  # describe() reads back


def test_defaults_are_keras_defaults() -> None:
    assert Optimizer.parse("adam") == Optimizer("adam", beta_1=0.9, beta_2=0.999, epsilon=1e-7)
    assert Optimizer.parse("sgd") == SGD


@pytest.mark.parametrize("text, message", [
    ("rmsprop", "unknown optimizer 'rmsprop'"),
    ("sgd:beta_1=0.9", "sgd has no option 'beta_1'"),
    ("adam:momentum=0.9", "adam has no option 'momentum'"),
    ("sgd:momentum=fast", "momentum needs a number"),
    ("sgd:momentum=1", "momentum must be in [0, 1)"),
    ("sgd:momentum=nan", "momentum must be in [0, 1)"),
    ("sgd:nesterov", "nesterov needs a momentum > 0"),
    ("sgd:momentum=0.9,nesterov=no", "write nesterov alone"),
    ("adam:beta_2=1.5", "beta_2 must be in [0, 1)"),
    ("adam:epsilon=0", "epsilon must be a finite number > 0"),
])
def test_bad_options_are_named(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        Optimizer.parse(text)
