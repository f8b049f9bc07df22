import pytest
import torch

from genai_course.optim import SGD, Adam, gradient_descent, trajectory
from genai_course.train import fit


def problem(seed=0):
    """A small non-convex regression with two parameter tensors, in float64."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 3, generator=g, dtype=torch.float64)
    y = torch.sin(x.sum(1, keepdim=True))
    w1 = torch.randn(3, 8, generator=g, dtype=torch.float64)
    w2 = torch.randn(8, 1, generator=g, dtype=torch.float64)

    def loss(params):
        a, b = params
        return ((torch.tanh(x @ a) @ b - y) ** 2).mean()

    return loss, [w1, w2]


def run(make_optimizer, steps=300):
    loss, init = problem()
    params = [p.clone().requires_grad_(True) for p in init]
    optimizer = make_optimizer(params)
    path = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss(params).backward()
        optimizer.step()
        path.append(torch.cat([p.detach().flatten() for p in params]))
    return torch.stack(path)


@pytest.mark.parametrize(
    "hyper",
    [
        dict(lr=0.1),
        dict(lr=0.05, momentum=0.9),
        dict(lr=0.05, momentum=0.9, dampening=0.3),
        dict(lr=0.05, momentum=0.9, nesterov=True),
        dict(lr=0.05, momentum=0.5, weight_decay=0.01),
    ],
)
def test_sgd_trajectory_equals_torch(hyper):
    ours = run(lambda p: SGD(p, **hyper))
    reference = run(lambda p: torch.optim.SGD(p, **hyper))
    assert (ours - reference).abs().max() < 1e-6
    assert (ours[-1] - ours[0]).abs().max() > 0.1  # it went somewhere


@pytest.mark.parametrize(
    "hyper",
    [
        dict(),
        dict(lr=0.01),
        dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6),
        dict(lr=0.01, weight_decay=0.1),
    ],
)
def test_adam_trajectory_equals_torch(hyper):
    ours = run(lambda p: Adam(p, **hyper))
    reference = run(lambda p: torch.optim.Adam(p, **hyper))
    assert (ours - reference).abs().max() < 1e-6


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: SGD(p, lr=-0.1), "lr must be >= 0"),
        (lambda p: SGD(p, lr=0.1, nesterov=True), "nesterov needs momentum > 0"),
        (lambda p: SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "dampening = 0"),
        (lambda p: SGD(p, lr=0.1, momentum=-1), "momentum must be >= 0"),
        (lambda p: Adam(p, betas=(0.9, 1.0)), r"betas must be two numbers in \[0, 1\)"),
        (lambda p: Adam(p, eps=0), "eps must be > 0"),
        (lambda p: Adam(p, lr=-1), "lr must be >= 0"),
        (lambda p: Adam(p, weight_decay=-1), "weight_decay must be >= 0"),
    ],
)
def test_bad_hyperparameters_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make([torch.zeros(2, requires_grad=True)])


A = torch.tensor([[1.0, 0.0], [0.0, 20.0]], dtype=torch.float64)


def quadratic(x):
    return 0.5 * x @ A @ x


def test_hand_written_gradient_and_autograd_give_the_same_path():
    x0 = torch.tensor([3.0, 1.0], dtype=torch.float64)
    by_hand = gradient_descent(quadratic, x0, lr=0.05, steps=50, grad=lambda x: A @ x)
    by_autograd = gradient_descent(quadratic, x0, lr=0.05, steps=50)
    assert by_hand.shape == (51, 2)
    torch.testing.assert_close(by_hand, by_autograd, rtol=0, atol=1e-15)


def test_stability_threshold_is_two_over_the_largest_eigenvalue():
    x0 = torch.tensor([3.0, 1.0], dtype=torch.float64)
    stable = gradient_descent(quadratic, x0, lr=0.99 * 2 / 20, steps=2000)
    unstable = gradient_descent(quadratic, x0, lr=1.01 * 2 / 20, steps=2000)
    assert stable[-1].norm() < 1e-6
    assert unstable[-1, 1].abs() > 1e3 or not torch.isfinite(unstable[-1]).all()


def test_trajectory_with_plain_sgd_is_gradient_descent():
    x0 = torch.tensor([3.0, 1.0], dtype=torch.float64)
    path = trajectory(quadratic, x0, lambda p: SGD(p, lr=0.05), steps=40)
    torch.testing.assert_close(path, gradient_descent(quadratic, x0, lr=0.05, steps=40))
    with pytest.raises(ValueError, match="steps must be a non-negative int"):
        trajectory(quadratic, x0, lambda p: SGD(p, lr=0.05), steps=-1)


def test_the_books_adam_resumes_bit_identically_inside_fit(tmp_path):
    """Optimizer state (m, v, step) survives a checkpoint round trip."""
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))

    def train(epochs, model, **kwargs):
        optimizer = Adam(model.parameters(), lr=0.01)
        return fit(
            model,
            optimizer,
            x,
            lambda b: (model(b) ** 2).mean(-1),
            epochs=epochs,
            batch_size=10,
            **kwargs,
        )

    torch.manual_seed(0)
    reference_model = torch.nn.Linear(2, 2)
    train(4, reference_model)
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 2)
    train(2, model, checkpoint=tmp_path / "c.pt")
    resumed = torch.nn.Linear(2, 2)
    train(4, resumed, checkpoint=tmp_path / "c.pt", resume=True)
    assert all(
        torch.equal(a, b)
        for a, b in zip(reference_model.parameters(), resumed.parameters(), strict=True)
    )
