"""The grid explorer widget and the fixed-dataset feature law."""

import plotly.graph_objects as go
import pytest
import torch

from utils.data import FixedDataset
from utils.models import ToyModel, ToyModelConfig
from utils.widgets import grid_explorer


def test_grid_explorer_looks_up_the_figure_for_every_slider_position():
    calls = []

    def make_figure(i, j):
        calls.append((i, j))
        return go.Figure(go.Scatter(x=[i], y=[j]))

    widget = grid_explorer(make_figure, {"p": [1.0, 0.1, 0.01], "decay": [1.0, 0.5]})
    first, second, output = widget.children
    assert calls == [(0, 0)]
    first.value = 2  # the extreme end of each slider
    second.value = 1
    assert calls[-1] == (2, 1)
    assert [label for label, _ in first.options] == ["1", "0.1", "0.01"]
    with pytest.raises(ValueError, match="at least one"):
        grid_explorer(make_figure, {})
    with pytest.raises(ValueError, match="no values"):
        grid_explorer(make_figure, {"p": []})


def test_fixed_dataset_draws_stored_rows_only():
    points = torch.arange(12.0).reshape(4, 3)
    law = FixedDataset(points, n_inst=2)
    batch = law.sample(50, torch.Generator().manual_seed(0))
    assert batch.shape == (50, 2, 3)
    assert torch.equal(batch[:, 0], batch[:, 1])  # shared rows across instances
    rows = {tuple(r.tolist()) for r in batch[:, 0]}
    assert rows <= {tuple(r.tolist()) for r in points} and len(rows) == 4
    per_instance = FixedDataset(torch.rand(10, 3, 5))
    assert (per_instance.n_points, per_instance.n_inst, per_instance.n_features) == (10, 3, 5)
    model = ToyModel(ToyModelConfig(2, 3, 1), data=law, seed=0)
    assert model.generate_batch(7).shape == (7, 2, 3)


@pytest.mark.parametrize(
    "args, message",
    [
        ((torch.zeros(5),), "shape"),
        ((torch.zeros(0, 3),), "non-empty"),
        ((torch.zeros(4, 3),), "need n_inst"),
        ((torch.zeros(4, 2, 3), 3), "has 2 instances"),
    ],
)
def test_fixed_dataset_rejects_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        FixedDataset(*args)
