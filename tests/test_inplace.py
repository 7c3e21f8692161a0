"""Safe like PyTorch: a tensor whose data changed after an op saved it for the
backward pass makes backward() refuse, instead of giving wrong gradients."""
import numpy as np
import pytest

from backprop_course import Tensor, losses, nn, no_grad, optim

REFUSED = r"modified in place .* after the op .* saved it"


def leaf(values, label=""):
    return Tensor(np.array(values, dtype=np.float64), requires_grad=True, label=label)


def subtract_in_place(a):
    a.data -= 1                        # the lesson's p.data -= lr * p.grad


def assign_new_array(a):
    a.data = a.data + 100


def assign_same_numbers(a):
    a.data = a.data * 1                # the numbers are equal, but it was assigned


@pytest.mark.parametrize("edit", [subtract_in_place, assign_new_array, assign_same_numbers])
def test_assigning_saved_data_before_backward_is_refused(edit):
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    y = (a * b).sum()
    edit(a)
    with pytest.raises(RuntimeError, match=REFUSED):
        y.backward()


def test_the_issue_example_names_tensor_op_and_usual_cause():
    a, b = leaf([1.0, 2.0], label="a"), leaf([3.0, 4.0])
    y = (a * b).sum()
    a.data += 100                      # without the version counter: b.grad == [101, 102]
    with pytest.raises(RuntimeError) as err:
        y.backward()
    message = str(err.value)
    assert "tensor 'a' (shape (2,))" in message
    assert "the op '*'" in message
    assert "optimiser step" in message and "run the forward pass again" in message
    assert b.grad is None                               # nothing half-computed


def test_an_optimiser_step_between_forward_and_backward_is_refused():
    net = nn.MLP([3, 4, 2], rng=0)
    opt = optim.SGD(net.parameters(), lr=0.1)
    X, y = np.ones((5, 3)), np.array([0, 1, 0, 1, 1])
    losses.cross_entropy(net(X), y).backward()
    loss = losses.cross_entropy(net(X), y)              # forward pass at the old weights
    opt.step()                                          # ... then the weights change
    with pytest.raises(RuntimeError, match=r"Linear\(4, 2\)\.weight.*'@'.*optimiser"):
        loss.backward()


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
    lambda ps: optim.RMSprop(ps), lambda ps: optim.Adam(ps),
])
def test_every_optimiser_step_counts_as_a_change(make):
    w = leaf([1.0, -2.0])
    opt = make([w])
    (w * w).sum().backward()
    y = (w * w).sum()
    opt.step()
    with pytest.raises(RuntimeError, match=REFUSED):
        y.backward()


def test_a_changed_output_that_its_op_saved_is_refused():
    x = leaf([0.5, 1.0])
    e = x.exp()                                         # exp's backward reads e itself
    loss = e.sum()
    e.data -= 1
    with pytest.raises(RuntimeError, match=r"the output of 'exp'.*op 'exp'"):
        loss.backward()


def test_changes_no_backward_reads_are_allowed():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    y = (a + b).sum()                                   # + saves nothing
    a.data += 100
    y.backward()
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])


def test_the_usual_loop_passes_and_a_fresh_forward_after_a_step_is_fine():
    w = leaf([1.0, -2.0])
    opt = optim.SGD([w], lr=0.1)
    for _ in range(3):                                  # zero_grad, forward, backward, step
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        np.testing.assert_allclose(w.grad, 2 * w.data)
        opt.step()
    with no_grad():                                     # and edits without a graph
        w.data = w.data * 2
    (w * w).sum().backward()


def test_gradients_are_right_without_the_edit():
    """The same graph as the refused case, backward before the edit: the
    control that shows the refusal is about the edit."""
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    y = (a * b).sum()
    y.backward()
    a.data += 100
    np.testing.assert_array_equal(b.grad, [1.0, 2.0])
