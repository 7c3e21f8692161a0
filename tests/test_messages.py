"""Bad input a learner is likely to try: each gets a message naming the op,
the shapes or values, and the fix (the usual mistake first)."""
import numpy as np
import pytest

from backprop_course import Tensor, Value, nn, optim
from backprop_course.gradcheck import gradcheck


def message(error, call):
    with pytest.raises(error) as info:
        call()
    return str(info.value)


def test_tensor_plus_value():
    text = message(TypeError, lambda: Tensor([1.0, 2.0]) + Value(3.0))
    assert text.startswith("Tensor + Value:")
    assert "Tensor(v.data)" in text and "Value throughout" in text


def test_value_plus_tensor():
    text = message(TypeError, lambda: Value(3.0) + Tensor([1.0, 2.0]))
    assert "Value +: Tensor" in text and "Tensor(v.data)" in text


def test_a_list_of_values_into_a_tensor():
    text = message(TypeError, lambda: Tensor([Value(1.0), Value(2.0)]))
    assert "Python objects (Value)" in text and "v.data" in text


def test_optimiser_given_a_module():
    net = nn.MLP([2, 3, 1], rng=0)
    text = message(TypeError, lambda: optim.SGD(net, lr=0.1))
    assert text == ("SGD got a MLP module: pass its parameters, "
                    "SGD(net.parameters(), ...)")
    text = message(TypeError, lambda: optim.Adam(nn.Linear(2, 3, rng=0)))
    assert "Adam got a Linear module" in text


def test_optimiser_given_something_else():
    text = message(TypeError, lambda: optim.SGD(3.0, lr=0.1))
    assert "SGD: params must be a list of Tensors (net.parameters()), got float" in text


def test_mlp_given_one_number():
    text = message(TypeError, lambda: nn.MLP(5))
    assert "sizes is the list of layer widths" in text and "nn.MLP([5, 16, 1])" in text


def test_mlp_given_a_bad_width():
    text = message(ValueError, lambda: nn.MLP([5, 0, 1]))
    assert text == "MLP: sizes[1] must be a positive integer, got 0"


def test_gradcheck_on_a_function_returning_an_array():
    x = Tensor([0.5, 1.0], requires_grad=True)
    text = message(TypeError, lambda: gradcheck(lambda t: np.exp(t.data), x))
    assert "f returned a numpy.ndarray, not a Tensor" in text
    assert "np.exp(t.data)" in text and "t.exp()" in text


def test_batched_matmul_with_mismatched_batch_axes():
    a, b = Tensor(np.ones((2, 3, 4))), Tensor(np.ones((5, 4, 6)))
    text = message(ValueError, lambda: a @ b)
    assert text.startswith("Tensor @: the batch axes of (2, 3, 4) and (5, 4, 6) "
                           "((2,) and (5,)) do not broadcast")


def test_matmul_with_mismatched_inner_sizes_suggests_the_transpose():
    text = message(ValueError, lambda: Tensor(np.ones((5, 3))) @ Tensor(np.ones((2, 3))))
    assert "(5, 3) and (2, 3) do not match (3 != 2)" in text and "transposed" in text


def test_value_exp_overflow():
    text = message(OverflowError, lambda: Value(1000.0).exp())
    assert text.startswith("Value.exp: e^1000 is larger than the largest float")
    assert "learning rate too large" in text
    assert Value(700.0).exp().data == pytest.approx(np.exp(700.0))   # still fine below


def test_value_power_overflow():
    text = message(OverflowError, lambda: Value(1e200) ** 2)
    assert text.startswith("Value ** 2: 1e+200 ** 2 is larger than the largest float")


def test_nan_flowing_into_log():
    x = Tensor([1.0, np.nan, 2.0])
    text = message(ValueError, lambda: x.log())
    assert text.startswith("Tensor.log: x > 0 fails for 1 of 3 entries (1 NaN: "
                           "an earlier step already produced them")


def test_log_of_negative_names_the_smallest_entry():
    text = message(ValueError, lambda: Tensor([1.0, -0.5, 0.0]).log())
    assert "x > 0 fails for 2 of 3 entries (smallest -0.5)" in text
    assert "losses.cross_entropy" in text


def test_nan_elsewhere_flows_through_as_in_numpy():
    """Only ops with a domain refuse: a diverging run must be able to show its
    inf or NaN loss (the learning-rate explorer counts on it)."""
    with np.errstate(all="ignore"):
        y = (Tensor([np.nan, 1.0], requires_grad=True) * 2).exp().sum()
    assert np.isnan(y.item())


def test_float16_input():
    text = message(TypeError, lambda: Tensor(np.ones(3, dtype=np.float16)))
    assert text.startswith("Tensor: float16 is not supported")
    assert "x.astype(np.float32)" in text


def test_truth_value_of_several_numbers():
    text = message(ValueError, lambda: bool(Tensor([1.0, 2.0])))
    assert text.startswith("bool(Tensor) of shape (2,): the truth value of 2 numbers "
                           "is ambiguous")
    assert "t.data.any()" in text and "t.item()" in text
    assert bool(Tensor([3.0])) and not bool(Tensor(0.0))   # one number is fine


def test_assigning_float16_data_is_refused_too():
    t = Tensor([1.0])
    text = message(TypeError, lambda: setattr(t, "data", np.ones(1, np.float16)))
    assert "float16 is not supported" in text
