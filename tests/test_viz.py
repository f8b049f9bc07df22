import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from genai_course.train import History
from genai_course.viz import image_grid, plot_history


def shown(fig: Figure) -> np.ndarray:
    """The canvas image_grid drew."""
    (image,) = fig.axes[0].get_images()
    return np.asarray(image.get_array())


@pytest.mark.parametrize(
    ("images", "canvas"),
    [
        (torch.zeros(10, 28, 28, dtype=torch.uint8), (2 * 30 + 2, 8 * 30 + 2)),
        (torch.rand(10, 784), (2 * 30 + 2, 8 * 30 + 2)),
        (np.zeros((3, 1, 28, 28)), (30 + 2, 3 * 30 + 2)),
        (torch.rand(16, 3, 32, 32), (2 * 34 + 2, 8 * 34 + 2, 3)),
    ],
)
def test_image_grid_accepts_the_book_shapes(images, canvas):
    fig = image_grid(images, nrow=8)
    assert isinstance(fig, Figure)
    assert shown(fig).shape == canvas


def test_image_grid_places_each_image():
    images = torch.stack([torch.full((28, 28), k, dtype=torch.uint8) for k in (0, 255, 51)])
    canvas = shown(image_grid(images, nrow=2))
    assert canvas[2, 2] == 0 and canvas[2, 32] == 1.0 and canvas[32, 2] == pytest.approx(0.2)
    assert canvas[0, 0] == 1.0  # the padding is white


@pytest.mark.parametrize("shape", [(10, 100), (28, 28), (2, 2, 28, 28), (1, 2, 3, 4, 5)])
def test_image_grid_names_a_wrong_shape(shape):
    with pytest.raises(
        ValueError, match=r"must have shape \(N, 28, 28\), \(N, 784\) or \(N, C, H, W\)"
    ):
        image_grid(torch.zeros(shape))


def test_image_grid_refuses_values_outside_0_1():
    with pytest.raises(ValueError, match=r"span \[-1, 1\].*\(x \+ 1\) / 2"):
        image_grid(torch.linspace(-1, 1, 784).reshape(1, 28, 28))
    with pytest.raises(ValueError, match="nrow must be a positive int"):
        image_grid(torch.zeros(2, 28, 28), nrow=0)
    with pytest.raises(ValueError, match="nrow must be a positive int, got True"):
        image_grid(torch.zeros(2, 28, 28), nrow=True)


def test_plot_history_has_a_panel_per_metric():
    history = History(steps={"loss": [3.0, 2.0, 1.0]}, epochs={"loss": [2.0], "test_nll": [1.5]})
    fig = plot_history(history)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "test_nll"]
    assert [ax.get_xlabel() for ax in fig.axes] == ["step", "epoch"]
    assert list(fig.axes[0].lines[0].get_ydata()) == [3.0, 2.0, 1.0]
    with pytest.raises(ValueError, match="history is empty"):
        plot_history(History())
