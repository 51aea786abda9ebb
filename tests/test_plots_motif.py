"""Chapter 7's motif figures: right traces from the inputs, inputs untouched, clear errors."""

import plotly.graph_objects as go
import pytest
import torch

from utils import motif, plots


def hand_weights():
    W1, W2, _ = motif.hand_built_motif()
    return W1, W2


def test_weight_distributions_has_one_curve_per_group_and_panel():
    W1, W2 = hand_weights()
    W1, W2 = torch.cat([W1, W1]), torch.cat([W2, W2])
    before = W1.clone(), W2.clone()
    fig = plots.plot_weight_distributions(W1, W2, ["a", "b"], motif.MotifThresholds())
    assert isinstance(fig, go.Figure)
    assert [t.name for t in fig.data] == ["a", "a", "b", "b"]
    # the hand-built W1 has 12 entries, 7 of them exactly 0 (drawn in the first bin)
    assert sum(fig.data[0].y) == pytest.approx(1.0)
    assert fig.data[0].y[0] == pytest.approx(7 / 12)
    assert torch.equal(W1, before[0]) and torch.equal(W2, before[1])
    with pytest.raises(ValueError, match=r"groups needs one label per instance \(2\)"):
        plots.plot_weight_distributions(W1, W2, ["a"], motif.MotifThresholds())


def test_asymmetry_places_the_hand_built_pair():
    W1, W2 = hand_weights()
    fig = plots.plot_asymmetry(W1, W2, motif.MotifThresholds())
    (dots,) = fig.data
    # neuron 0 is the only neuron that reads and writes two features: i = 0 (|W1| 2), j = 1 (|W1| 1/2)
    assert list(dots.x) == [pytest.approx(2.0)] and list(dots.y) == [pytest.approx(2.0)]  # log2 4, log2 4
    assert dots.marker.color[0] == pytest.approx(5 / 4)  # inhibition / leak


def test_frequency_plot_draws_one_line_per_colour_value():
    has = torch.tensor([True, False, True, True, False, False])
    table = motif.frequency_table(
        has, p=torch.tensor([0.1, 0.1, 0.2, 0.2, 0.1, 0.2]), decay=torch.tensor([0.7, 0.7, 0.7, 0.7, 0.8, 0.8])
    )
    fig = plots.plot_motif_frequency(table, x="p", colour="decay")
    assert [t.name for t in fig.data] == ["decay = 0.7", "decay = 0.8"]
    assert list(fig.data[0].y) == [0.5, 1.0] and list(fig.data[1].y) == [0.0, 0.0]
    with pytest.raises(ValueError, match="make it with utils.motif.frequency_table"):
        plots.plot_motif_frequency(table.drop(columns=["low"]), x="p", colour="decay")


def test_trace_plot_stacks_the_parts_of_output_j():
    model = motif.model_with_weights(*motif.hand_built_motif(), feature_probability=0.3)
    trace = motif.trace_motif(model, motif.find_motifs(model.W1, model.W2)[0])
    fig = plots.plot_motif_trace(trace)
    bars = [t for t in fig.data if isinstance(t, go.Bar)]
    assert [list(t.y) for t in bars] == [[4.0, 1.0, 5.0], [-5.0, 0.0, -5.0], [0.0, 0.0, 0.0]]
    assert fig.layout.barmode == "relative"
    with pytest.raises(ValueError, match="make it with utils.motif.trace_motif"):
        plots.plot_motif_trace(trace.drop(columns=["pre_j"]))
