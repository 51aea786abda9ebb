"""plots.plot_sae_tradeoff: one line of SAEs per curve, hover labels, the true L0, clear errors."""

import math

import pytest
import torch

from utils import plots
from utils.plots import layout


def test_tradeoff_draws_one_line_per_curve_with_labels():
    l0, fvu = torch.tensor([30.0, 4.0, 2.0]), torch.tensor([0.01, 0.2, 0.5])
    fig = plots.plot_sae_tradeoff({"L1": (l0, fvu), "TopK": ([2.0, 3.0], [0.2, 0.15])},
                                  labels={"L1": ["a", "b", "c"]}, true_l0=3.0)  # fmt: skip
    assert [trace.name for trace in fig.data] == ["L1", "TopK"]
    assert list(fig.data[0].x) == pytest.approx([30.0, 4.0, 2.0]) and list(fig.data[0].text) == ["a", "b", "c"]
    assert fig.layout.xaxis.type == "log" and fig.layout.height > 300 and fig.layout.width is None
    assert layout.min_width(fig) == layout.NARROWEST  # laid out for the narrowest page
    assert any(shape.x0 == 3.0 for shape in fig.layout.shapes)
    # its label beside the line: on the log axis an annotation sits at log10(3), not at 10 ** 3
    (label,) = [a for a in fig.layout.annotations if a.text == "true features per input"]
    assert label.x == pytest.approx(math.log10(3.0)) and label.xref == "x"
    assert torch.equal(l0, torch.tensor([30.0, 4.0, 2.0]))  # inputs untouched


@pytest.mark.parametrize(
    "curves, labels, message",
    [
        ({}, None, "at least one entry"),
        ({"L1": ([1.0, 2.0], [0.1])}, None, "l0 has 2 values but fvu has 1"),
        ({"L1": ([1.0, 2.0],)}, None, r"must be a pair \(l0, fvu\)"),
        ({"L1": ([1.0, 2.0], [0.1, 0.2])}, {"L1": ["one"]}, "one label per point"),
        ({"L1": ([1.0, 2.0], [0.1, 0.2])}, {"L1": "ab"}, "must be a list of labels"),
        ({"L1": ([1.0, 2.0], [0.1, 0.2])}, None, "true_l0 must be positive"),
    ],
)
def test_tradeoff_bad_input(curves, labels, message):
    true_l0 = 0.0 if "true_l0" in message else None
    with pytest.raises((ValueError, TypeError), match=message):
        plots.plot_sae_tradeoff(curves, labels=labels, true_l0=true_l0)
