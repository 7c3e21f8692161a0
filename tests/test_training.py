"""training: predict_proba runs the net itself; one rule for "diverged"."""
import math

import numpy as np
import pytest

from backprop_course import nn, training
from backprop_course.tensor import no_grad


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_predict_proba_is_the_nets_own_output():
    X, y = training.load_data("moons")
    run = training.train(X, y, lr=0.1, steps=5, hidden=(8, 8))
    run.net.layers[3] = nn.Tanh()       # a net whose activations differ per layer
    with no_grad():
        expected = softmax(run.net(X).data)
    np.testing.assert_allclose(run.predict_proba(X), expected, rtol=1e-12)


def test_predict_proba_of_an_earlier_step_matches_a_run_stopped_there():
    X, y = training.load_data("xor")
    long = training.train(X, y, lr=0.5, steps=20, hidden=(6,), activation="tanh")
    short = training.train(X, y, lr=0.5, steps=7, hidden=(6,), activation="tanh")
    np.testing.assert_allclose(long.predict_proba(X, step=7), short.predict_proba(X),
                               rtol=1e-12)


def test_predict_proba_leaves_training_undisturbed():
    X, y = training.load_data("xor")
    looked = training.train(X, y, lr=0.5, steps=5, hidden=(6,))
    looked.predict_proba(X, step=2)     # must not touch the net the run trains
    looked.predict_proba(X)
    looked.run_to(10)
    plain = training.train(X, y, lr=0.5, steps=10, hidden=(6,))
    np.testing.assert_array_equal(looked.losses, plain.losses)


@pytest.mark.parametrize("history, trend", [
    ([1.0, 0.5, 0.2], "learning"),
    ([1.0, 0.97, 0.95], "flat"),
    ([1.0, 1.02, 1.1], "rose"),
    ([1.0, 3.0, 0.5], "unstable"),
    ([1.0, 3.0, 0.95], "jumped and stuck"),
    ([1.0, 2.0, math.inf], "not finite"),
    ([1.0, math.nan], "not finite"),
])
def test_loss_trend_names_what_the_curve_did(history, trend):
    assert training.loss_trend(history) == trend
    assert (trend in training.DIVERGED) == (trend in ("rose", "jumped and stuck",
                                                      "not finite"))


def test_diverged_is_loss_trend_in_diverged():
    X, y = training.load_data("moons")
    for lr in (0.01, 5.0, 100.0):
        run = training.train(X, y, lr=lr, steps=30)
        assert run.diverged() == (training.loss_trend(run.losses) in training.DIVERGED)
    assert training.train(X, y, lr=100.0, steps=30).diverged()
    assert not training.train(X, y, lr=0.1, steps=30).diverged()
