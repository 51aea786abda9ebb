"""Chapter 7's control figures: right traces from the inputs, inputs untouched, clear errors."""

import math

import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

from utils import motif, plots


def test_cancellation_boxes_one_per_kind_capped():
    W1, W2, b = motif.hand_built_motif()
    pairs = motif.shared_pairs(W1, W2, b)
    before = pairs.copy()
    fig = plots.plot_cancellation_by_kind(pairs, cap=1.1)
    assert isinstance(fig, go.Figure)
    # the names are the tick labels under the boxes, wrapped to fit: compare them with the line breaks as spaces
    assert [t.name.replace("<br>", " ").rsplit(" (", 1)[0] for t in fig.data] == [
        "asymmetric (i → j, the large leak)",
        "reverse (j → i, the small leak)",
        "near-symmetric",
        "other shared pairs",
    ]
    # the hand-built asymmetric pair has inhibition / leak 5 / 4, drawn at the cap; its reverse 0 / 0.25
    assert list(fig.data[0].y) == [pytest.approx(1.1)] and list(fig.data[1].y) == [0.0]
    assert len(fig.data[2].y) == 0 and "(0 pairs)" in fig.data[2].name
    pd.testing.assert_frame_equal(pairs, before)
    with pytest.raises(ValueError, match="make them with utils.motif.shared_pairs"):
        plots.plot_cancellation_by_kind(pairs.drop(columns=["leak"]))


def test_path_ablation_plots_increase_against_strength():
    results = pd.DataFrame(
        {
            "instance": [0, 3],
            "loss intact": [0.01, 0.02],
            "loss, paths cut": [0.5, 0.02],
            "loss, control": [0.02, math.nan],
            "strength cut": [2.0, 1.0],
            "control strength": [1.5, math.nan],
        }
    )
    fig = plots.plot_path_ablation(results)
    paths, control = fig.data
    assert list(paths.x) == [2.0, 1.0] and list(paths.y) == [
        pytest.approx(0.49),
        pytest.approx(1e-7),
    ]  # 0 drawn at the floor
    assert list(control.x) == [1.5] and list(control.y) == [
        pytest.approx(0.01)
    ]  # the motif without a control is left out
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    with pytest.raises(ValueError, match="make them with utils.motif.path_ablation_study"):
        plots.plot_path_ablation(results.drop(columns=["control strength"]))


def test_path_ablation_plot_from_the_study():
    W1, W2, b = motif.hand_built_motif()
    model = motif.model_with_weights(W1, W2, b, feature_probability=0.3)
    results = motif.path_ablation_study(model, motif.find_motifs(model.W1, model.W2), batch_size=512)
    fig = plots.plot_path_ablation(results)
    assert list(fig.data[0].x) == [5.0] and fig.data[0].y[0] > 0.5
    assert len(fig.data[1].x) == 0  # nothing else pulls an output down: no control
    assert torch.equal(model.W2.detach(), W2)
