"""The stream policies: pyodl/reference/stream.py against the firmware's C (firmware/odl/stream.c, called
through the host build with ctypes), decision for decision and threshold bit for bit on synthetic streams; and
what each policy is for: BUDGET reaches its query rate, AGREEMENT its disagreement rate among queries, the drift
detector rises and falls where its counts say."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator

import numpy as np
import pytest

from pyodl.model.architecture import paper_model
from pyodl.model.stream import Policy, StreamConfig
from pyodl.reference.stream import StreamPolicy
from pyodl.toolchain.host_library import HostBuilder

SIZE_ERROR = 10  # ODL_ERR_SIZE


class _Config(ctypes.Structure):
    _fields_ = [("policy", ctypes.c_uint32), ("rate", ctypes.c_float), ("threshold", ctypes.c_float),
                ("step", ctypes.c_float), ("disagree_target", ctypes.c_float), ("explore", ctypes.c_float),
                ("seed", ctypes.c_uint32), ("drift_window", ctypes.c_uint32), ("drift_on", ctypes.c_uint32),
                ("drift_off", ctypes.c_uint32)]


class _State(ctypes.Structure):
    _fields_ = [("config", _Config), ("threshold", ctypes.c_float), ("rng", ctypes.c_uint32),
                ("seen", ctypes.c_uint32), ("queried", ctypes.c_uint32), ("history", ctypes.c_uint32),
                ("answers", ctypes.c_uint32), ("explored", ctypes.c_uint32), ("drift", ctypes.c_uint32),
                ("drifts", ctypes.c_uint32)]


class CStream:
    """odl_stream_t driven through the host library."""

    def __init__(self, lib: ctypes.CDLL, config: StreamConfig) -> None:
        self.lib = lib
        self.state = _State()
        c = _Config(int(config.policy), config.rate, config.threshold, config.step, config.disagree_target,
                    config.explore, config.seed, config.drift_window, config.drift_on, config.drift_off)
        self.status = lib.odl_stream_init(ctypes.byref(self.state), ctypes.byref(c))

    def decide(self, confidence: float) -> bool:
        return bool(self.lib.odl_stream_decide(ctypes.byref(self.state), ctypes.c_float(confidence)))

    def feedback(self, agreed: bool) -> None:
        self.lib.odl_stream_feedback(ctypes.byref(self.state), int(agreed))


@pytest.fixture(scope="module")
def lib(host_builder: HostBuilder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ctypes.CDLL]:
    library = ctypes.CDLL(str(host_builder.export_and_build(paper_model(20, 0), tmp_path_factory.mktemp("m"))))
    library.odl_stream_init.restype = ctypes.c_int
    library.odl_stream_decide.restype = ctypes.c_int
    library.odl_stream_feedback.restype = None
    yield library


def _stream(seed: int, n: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    """Confidences and teacher agreements: a confident model that is right where it is confident, until a drift
    halfway makes it wrong half the time whatever its confidence."""
    rng = np.random.default_rng(seed)
    conf = (1 / 6 + (5 / 6) * rng.beta(4, 1.5, size=n)).astype(np.float32)
    agreed = rng.random(n) < conf
    agreed[n // 2:] = rng.random(n - n // 2) < 0.5
    return conf, agreed


CONFIGS = {
    "always": StreamConfig(Policy.ALWAYS, drift_window=16, drift_on=8, drift_off=3),
    "random": StreamConfig(Policy.RANDOM, rate=0.3, seed=12345, drift_window=16, drift_on=8, drift_off=3),
    "budget": StreamConfig(Policy.BUDGET, rate=0.3, threshold=0.9, step=0.01, drift_window=16, drift_on=8,
                           drift_off=3),
    "agreement": StreamConfig(Policy.AGREEMENT, rate=0.02, threshold=0.5, step=0.02, disagree_target=0.4,
                              drift_window=32, drift_on=14, drift_off=6),
    "budget-no-drift": StreamConfig(Policy.BUDGET, rate=0.1, threshold=0.0, step=0.003),
    "budget-explore": StreamConfig(Policy.BUDGET, rate=0.3, threshold=0.9, step=0.01, explore=0.1, seed=99,
                                   drift_window=16, drift_on=8, drift_off=3),
    "agreement-explore": StreamConfig(Policy.AGREEMENT, rate=0.02, threshold=0.5, step=0.02, disagree_target=0.4,
                                      explore=0.15, seed=4242, drift_window=32, drift_on=14, drift_off=6),
    # An exploration share below float32's range is none on the device: no draw, so seed 0 is no error.
    "budget-explore-underflow": StreamConfig(Policy.BUDGET, rate=0.3, threshold=0.9, step=0.01, explore=1e-46,
                                             seed=0, drift_window=16, drift_on=8, drift_off=3),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_the_reference_makes_the_firmwares_decisions(lib: ctypes.CDLL, name: str) -> None:
    config = CONFIGS[name]
    c, py = CStream(lib, config), StreamPolicy(config)
    assert c.status == 0
    conf, agreed = _stream(7)
    decisions, thresholds = [], set()
    for x, a in zip(conf, agreed, strict=True):
        q = c.decide(float(x))
        assert q == py.decide(float(x))
        assert np.float32(c.state.threshold).tobytes() == py.threshold.tobytes()
        thresholds.add(float(py.threshold))
        if q:
            c.feedback(bool(a))
            py.feedback(bool(a))
            assert (bool(c.state.drift), c.state.drifts) == (py.drift, py.drifts)
            assert bool(c.state.explored) == py.explored
        decisions.append(q)
    assert (c.state.seen, c.state.queried, c.state.rng, c.state.history) == (py.seen, py.queried, py.rng, py.history)
    if config.policy.thresholded:
        assert len(thresholds) > 50  # the threshold really moved: the comparison covers its arithmetic
    if config.drift_window:
        assert py.drifts >= 1  # the drift halfway was seen
    assert 0 < sum(decisions) <= len(decisions)


def test_budget_reaches_its_query_rate_whatever_the_start() -> None:
    conf, _ = _stream(3, 20_000)
    for start in (0.0, 0.5, 1.0):
        policy = StreamPolicy(StreamConfig(Policy.BUDGET, rate=0.25, threshold=start, step=0.005))
        queried = [policy.decide(float(x)) for x in conf]
        assert abs(np.mean(queried[5000:]) - 0.25) < 0.01, start


def test_agreement_queries_where_the_teacher_disagrees_at_its_target() -> None:
    """A calibrated model (right with probability = its confidence): among the queries, the teacher disagrees at
    the target rate, far above the 1 - mean confidence a random choice would see."""
    rng = np.random.default_rng(5)
    conf = (1 / 6 + (5 / 6) * rng.beta(4, 1.5, size=30_000)).astype(np.float32)
    agreed = rng.random(len(conf)) < conf
    policy = StreamPolicy(StreamConfig(Policy.AGREEMENT, rate=0.01, threshold=1.0, step=0.01,
                                       disagree_target=0.4))
    disagreed = []
    for x, a in zip(conf, agreed, strict=True):
        if policy.decide(float(x)):
            policy.feedback(bool(a))
            disagreed.append(not a)
    late = disagreed[len(disagreed) // 2:]
    assert abs(np.mean(late) - 0.4) < 0.05 and 1 - conf.mean() < 0.3
    assert policy.queried < 0.5 * policy.seen  # it prunes


def test_exploration_queries_its_share_at_random_within_budgets_rate() -> None:
    """BUDGET with exploration: the rate still holds, a share ~explore of the windows is queried whatever its
    confidence (so the confident ones are queried too), and only those move nothing but the budget."""
    conf, _ = _stream(3, 20_000)
    policy = StreamPolicy(StreamConfig(Policy.BUDGET, rate=0.3, threshold=0.5, step=0.005, explore=0.1, seed=7))
    queried, explored = [], []
    for x in conf:
        queried.append(policy.decide(float(x)))
        explored.append(policy.explored)
    queried_, explored_ = np.array(queried[5000:]), np.array(explored[5000:])
    assert abs(queried_.mean() - 0.3) < 0.01
    # Exploration draws ~10% of all windows; those above the threshold are queried for that alone.
    above = conf[5000:] >= np.float32(policy.threshold)
    assert abs(explored_[above].mean() - 0.1) < 0.02
    assert not explored_[~queried_].any()


def test_agreements_threshold_moves_only_on_its_own_queries() -> None:
    """An explored query's answer is not the threshold's business: a teacher that disagrees with every explored
    window (the device is sure of them, so the threshold would only rise) leaves it where the unsure ones put it."""
    config = StreamConfig(Policy.AGREEMENT, rate=0.0, threshold=0.5, step=0.05, disagree_target=0.5, explore=0.5,
                          seed=3)
    policy = StreamPolicy(config)
    for _ in range(200):
        if policy.decide(0.99):  # above the threshold: only exploration queries it
            assert policy.explored
            policy.feedback(False)
    assert policy.threshold == np.float32(0.5) and policy.queried > 50


def test_the_drift_flag_rises_and_falls_on_its_counts() -> None:
    policy = StreamPolicy(StreamConfig(Policy.ALWAYS, drift_window=8, drift_on=5, drift_off=2))
    flags = []
    for agreed in [True] * 20 + [False] * 6 + [True] * 8:
        policy.decide(0.9)
        policy.feedback(agreed)
        flags.append(policy.drift)
    assert flags.index(True) == 24  # the fifth disagreement in the window
    # Disagreements at 20..25; at 31 the last 8 answers (24..31) hold two of them: the flag falls.
    assert flags.index(False, 24) == 31
    assert policy.drifts == 1


@pytest.mark.parametrize("bad", [
    dict(rate=1.5), dict(threshold=-0.1), dict(step=0.0), dict(disagree_target=2.0), dict(drift_window=33),
    dict(drift_window=8, drift_on=9), dict(drift_window=8, drift_on=4, drift_off=4),
    dict(policy=Policy.RANDOM, seed=0), dict(explore=1.5), dict(explore=0.1, seed=0),
    dict(policy=Policy.AGREEMENT, explore=0.1, seed=0),
])
def test_a_bad_configuration_is_refused_on_both_sides(lib: ctypes.CDLL, bad: dict) -> None:
    config = StreamConfig(**{"policy": Policy.BUDGET, **bad})
    assert CStream(lib, config).status == SIZE_ERROR
    with pytest.raises(ValueError):
        StreamPolicy(config)
    assert CStream(lib, StreamConfig()).status == 0
