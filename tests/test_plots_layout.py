"""How figures fit the width they get (`utils.plots.layout`), the book renderer's minimum width, and
the training dashboard's frames. The browser checks the drawn result (tests/test_book_figures.py)."""

import math
import re

import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

from utils import motif, plots
from utils.data import generate_data
from utils.models import LinearToyModel, ToyModel, ToyModelConfig
from utils.plots import layout
from utils.plots.renderer import BookRenderer
from utils.train import train_on_dataset


def test_text_width_grows_with_length_and_size_and_takes_the_widest_line():
    assert layout.text_width("abab", 12) == pytest.approx(2 * layout.text_width("ab", 12))
    # Arial's digits are 0.556 em wide; the estimate keeps 8% to spare
    assert layout.text_width("0123456789", 10) == pytest.approx(10 * 5.56 * 1.08)
    assert layout.text_width("abcd", 24) == pytest.approx(2 * layout.text_width("abcd", 12))
    assert layout.text_width("ab<br>abcd", 12) == layout.text_width("abcd", 12)
    assert layout.text_width("<b>ab</b>", 12) == layout.text_width("ab", 12)  # tags take no room
    assert layout.text_width("iiii", 12) < layout.text_width("mmmm", 12)


@pytest.mark.parametrize("width", [40, 90, 150, 400])
def test_wrap_keeps_every_word_in_order_and_each_line_within_the_width(width):
    text = "Per-feature MSE when the feature is active: trained model (seed 0) against the naive solution"
    wrapped = layout.wrap(text, width, 16)
    lines = wrapped.split("<br>")
    assert " ".join(lines) == text
    assert all(layout.text_width(line, 16) <= width or " " not in line for line in lines)
    assert len(lines) >= 2
    assert layout.wrap("two<br>lines", 1000, 12) == "two<br>lines"  # breaks already there stay


def test_log_ticks_mark_decades_or_round_values_within_the_range():
    decades = layout.log_ticks(0.0003, 20.0)
    assert decades["tickvals"] == pytest.approx([1e-3, 1e-2, 1e-1, 1.0, 10.0])
    assert decades["ticktext"] == ["0.001", "0.01", "0.1", "1", "10"]
    thinned = layout.log_ticks(1e-6, 1.0, fit=3)
    assert len(thinned["tickvals"]) <= 4 and thinned["tickvals"][0] == pytest.approx(1e-6)
    narrow = layout.log_ticks(0.039, 0.056)  # the dashboard's loss: less than a decade
    assert 2 <= len(narrow["tickvals"]) <= 6
    assert all(0.039 <= v <= 0.056 for v in narrow["tickvals"])
    assert layout.log_ticks(1, 10.2)["ticktext"] == ["1", "2", "5", "10"]  # a decade: 2 and 5 between
    assert layout.log_ticks(1, 10.2, fit=3)["ticktext"] == ["1", "10"]
    tiny = layout.log_ticks(1.0, 1.0001)  # labels as precise as it takes to tell them apart
    assert len(set(tiny["ticktext"])) == len(tiny["ticktext"]) >= 2
    assert layout.log_ticks(5.0, 5.0) == dict(tickvals=[5.0], ticktext=["5"])  # one point on the axis
    with pytest.raises(ValueError, match="0 < low <= high"):
        layout.log_ticks(0.0, 1.0)


@pytest.mark.parametrize("n, length", [(10, 400), (10, 60), (100, 150), (40, 100)])
def test_thinned_ticks_fit_their_axis(n, length):
    label = layout.text_width(str(n - 1), layout.TICK_SIZE)
    step = layout.thinned_dtick(n, length, label)
    assert math.ceil(n / step) <= layout.max_ticks(length, label)
    if step > 1:  # and no finer step of the sequence would have fitted
        finer = [s for s in (1, 2, 5, 10, 20, 25, 50) if s < step]
        assert math.ceil(n / finer[-1]) > layout.max_ticks(length, label)


def test_legend_height_counts_the_rows_of_a_wrapping_legend():
    names = [f"feature {i}" for i in range(8)]
    one_row = layout.legend_height(names, 2000)
    assert layout.legend_height(names, 400) > one_row
    assert layout.legend_height(names, 100) == pytest.approx(8 * (one_row - 8) + 8)


def test_the_book_renderer_gives_a_figure_its_minimum_width_and_a_box_that_scrolls():
    fig = layout.set_min_width(go.Figure(go.Scatter(y=[1, 2]), layout=dict(height=300)), 480)
    assert layout.min_width(fig) == 480 and layout.min_width(fig.to_dict()) == 480
    html = BookRenderer().to_mimebundle(fig.to_dict())["text/html"]
    assert html.startswith('<div class="plotly-figure" style="overflow-x:auto; overflow-y:hidden;">')
    assert "min-width:480px" in html and "height:300px" in html
    animated = go.Figure(go.Scatter(y=[1]), frames=[go.Frame(data=[go.Scatter(y=[2])])])
    assert "min-width" not in BookRenderer().to_mimebundle(animated.to_dict())["text/html"]  # left as it is


def every_figure():
    """One figure from every figure function of the library, on small inputs."""
    generator = torch.Generator().manual_seed(0)
    W = torch.randn(3, 2, 5, generator=generator)
    x = torch.arange(1.0, 6.0)
    model = ToyModel(ToyModelConfig(n_inst=1, n_features=2, d_hidden=1), device="cpu", seed=0)
    data = generate_data(40, sparsity=0.5, generator=generator)
    run = train_on_dataset(model, data, steps=20, progress=False)
    grid = torch.rand(2, 3, 4, generator=generator)
    return {
        "data": plots.plot_data(data),
        "mapping": plots.plot_mapping(model, data),
        "dashboard": plots.plot_training_dashboard(model, data, run),
        "landscape": plots.plot_direction_landscape(torch.linspace(0, 3, 50), {"a": torch.linspace(1, 2, 50)}),
        "curves": plots.plot_curves(x, {"a": x}, log_x=True, log_y=True),
        "2d": plots.plot_features_in_2d(W),
        "Nd": plots.plot_features_in_Nd(W),
        "neurons": plots.plot_features_in_Nd(W, matrix="W", neuron_plot=True),
        "cosine": plots.plot_cosine_similarities(W),
        "geometry": plots.plot_feature_geometry(W, torch.tensor([0.1, 0.5, 1.0])),
        "phase": plots.plot_phase_diagram(grid, grid, grid, torch.logspace(-1, 1, 4), torch.logspace(-2, 0, 3)),
        "discrete": plots.plot_features_in_Nd_discrete(torch.randn(2, 3, 4), torch.randn(2, 4, 3)),
        "errors": plots.plot_feature_errors({"a": x}),
        "response": plots.plot_response_curves(torch.linspace(-1, 1, 5), torch.rand(5, 3)),
        "matrices": plots.plot_matrices({"A": torch.eye(3), "B": -torch.eye(3)}),
        "decomposition": plots.plot_error_decomposition(x, x),
        "weight heatmaps": plots.plot_weight_heatmaps(torch.randn(4, 30), torch.randn(30, 4)),
        "cosine distribution": plots.plot_cosine_distribution({"a": torch.rand(20), "b": -torch.rand(20)}),
        "frame spectra": plots.plot_frame_spectra({"a": torch.rand(12)}, torch.rand(5, 12)),
        "error parts": plots.plot_error_parts({"a": torch.rand(12), "b": torch.rand(12)}),
        "phase with boundaries": plots.plot_phase_with_boundaries(
            grid, grid, grid, torch.logspace(-1, 1, 4), torch.logspace(-2, 0, 3),
            boundaries={"a curve": (torch.logspace(-1, 1, 5), torch.full((5,), 0.1))}, marks=grid > 0.5,
        ),  # fmt: skip
        "cell values": plots.plot_cell_values(grid[0], torch.logspace(-1, 1, 4), torch.logspace(-2, 0, 3)),
        "curves and points": plots.plot_curves_and_points(x, {"a": x}, {"b": (x[:2], x[:2])}, log_y=True),
        "cancellation by kind": plots.plot_cancellation_by_kind(motif.shared_pairs(*motif.hand_built_motif())),
        "path ablation": plots.plot_path_ablation(
            pd.DataFrame({"instance": [0, 1], "loss intact": [0.01, 0.02], "loss, paths cut": [0.5, 0.03],
                          "loss, control": [0.02, 0.02], "strength cut": [2.0, 1.0], "control strength": [1.5, 0.5]})
        ),  # fmt: skip
        "trajectories": plots.plot_feature_trajectories(
            torch.arange(10.0), torch.rand(10, 3, generator=generator), "norm"
        ),
        "attack terms": plots.plot_attack_terms({"a": torch.randn(5, generator=generator), "b": torch.zeros(5)}),
        "hidden points": plots.plot_hidden_points([torch.randn(4, 2, generator=generator)], W[:1], ["T = 4"]),
        "sae trade-off": plots.plot_sae_tradeoff({"L1": (x, 1 / x)}, true_l0=2.0),
        "regimes": plots.plot_regime_diagram(
            torch.randint(0, 4, (2, 3, 4), generator=generator), grid, torch.logspace(-1, 1, 4),
            torch.logspace(-2, 0, 3), ("dropped", "own dimension", "antipodal", "same sign"),
        ),  # fmt: skip
    }


def test_every_public_figure_function_lays_itself_out():
    """Each `plot_*` function of `utils.plots` calls `layout.frame` (new figures too: this finds them by
    name, so a function added without a layout fails here, and in the book gets `layout.fallback`)."""
    import ast
    import inspect

    missing = []
    for name in dir(plots):
        function = getattr(plots, name)
        if name.startswith("plot_") and inspect.isfunction(function):
            tree = ast.parse(inspect.getsource(function))
            calls = [node.func for node in ast.walk(tree) if isinstance(node, ast.Call)]
            # `layout.frame` itself: `inputs.frame` (a DataFrame check) has the same attribute name
            if not any(isinstance(f, ast.Attribute) and f.attr == "frame" and getattr(f.value, "id", None) == "layout"
                       for f in calls):  # fmt: skip
                missing.append(name)
    assert not missing, f"these figure functions do not lay themselves out (layout.frame): {missing}"
    assert len([name for name in dir(plots) if name.startswith("plot_")]) >= len(every_figure())


def test_a_figure_no_function_laid_out_gets_the_fallback_in_the_book():
    fig = go.Figure(layout=dict(height=400, title="A long title that will not fit on one line of a phone's column"))
    for k in range(3):
        fig.add_trace(go.Scatter(y=[k, k + 1], name=f"a trace named {k}"))
    html = BookRenderer().to_mimebundle(fig.to_dict())["text/html"]
    assert f"min-width:{layout.NARROWEST}px" in html and layout.FONT in html
    laid = layout.fallback(go.Figure(fig))
    (title,) = [a for a in laid.layout.annotations if a.name == "title"]
    assert "<br>" in title.text and layout.text_width(title.text, layout.TITLE_SIZE) <= layout.NARROWEST
    assert laid.layout.legend.orientation == "h" and laid.layout.legend.yanchor == "top"
    assert laid.layout.legend.y < laid.layout.margin.b / laid.layout.height  # below the plot area
    assert not laid.layout.title.text
    height, n_annotations = laid.layout.height, len(laid.layout.annotations)
    assert layout.fallback(laid) is laid
    assert (laid.layout.height, len(laid.layout.annotations)) == (height, n_annotations)


def test_every_figure_is_laid_out_for_a_minimum_width_in_a_named_font():
    for name, fig in every_figure().items():
        width = layout.min_width(fig)
        assert width and layout.NARROWEST <= width <= 1000, f"{name}: minimum width {width}"
        assert fig.layout.width is None and fig.layout.height, name
        assert fig.layout.font.family == layout.FONT, name
        title = [a for a in fig.layout.annotations if a.name == "title"]
        assert len(title) <= 1, name
        for annotation in title:  # the title fits the minimum width
            assert layout.text_width(annotation.text, layout.TITLE_SIZE) <= width, name


def test_a_reference_line_on_a_log_axis_is_labelled_at_its_height():
    x = torch.arange(1.0, 6.0)
    fig = plots.plot_curves(x, {"a": x}, log_y=True, references={"optimum": 2.0})
    (label,) = [a for a in fig.layout.annotations if a.text == "optimum"]
    assert label.y == pytest.approx(math.log10(2.0)) and fig.layout.shapes[0].y0 == 2.0  # annotations take log10
    linear = plots.plot_curves(x, {"a": x}, references={"optimum": 2.0})
    assert [a.y for a in linear.layout.annotations if a.text == "optimum"] == [2.0]


def test_long_titles_wrap_instead_of_running_off():
    title = "Per-feature MSE when the feature is active: trained model (seed 0) against the naive solution"
    fig = plots.plot_feature_errors({"trained": torch.rand(10), "naive": torch.rand(10)}, title=title)
    (annotation,) = [a for a in fig.layout.annotations if a.name == "title"]
    assert annotation.text.count("<br>") >= 2 and annotation.text.replace("<br>", " ") == title
    assert fig.layout.meta["title"] == title
    assert fig.layout.margin.t > 3 * layout.TITLE_SIZE  # room for its lines


@pytest.fixture(scope="module")
def dashboard():
    """A dashboard of a ReLU model whose W grows well past where the data lies (seed 0, S = 0.8)."""
    model = ToyModel(ToyModelConfig(n_inst=2, n_features=2, d_hidden=1), device="cpu", seed=0)
    x = generate_data(200, sparsity=0.8, generator=torch.Generator().manual_seed(0))
    run = train_on_dataset(model, x, steps=400, lr=1e-2, snapshot_every=40, progress=False)
    return model, x, run, plots.plot_training_dashboard(model, x, run, instance=1, optimum=0.005, title="Experiment")


def test_each_dashboard_frame_carries_its_own_caption_and_redraws(dashboard):
    model, x, run, fig = dashboard
    steps = run.snapshot_steps.tolist()
    captions = []
    for frame, step in zip(fig.frames, steps):
        (title,) = [a for a in frame.layout.annotations if a.name == "title"]
        assert f"step {step}, loss {run.losses[step, 1]:.4f}" in title.text
        W = run.snapshots["W"][steps.index(step), 1, 0]
        assert f"W = [{W[0]:.2f}, {W[1]:.2f}]" in title.text
        captions.append(title.text)
    assert len(set(captions)) == len(captions)
    # the frames keep the panel titles; without redraw the caption (a layout change) would not show
    assert all(len(frame.layout.annotations) == len(fig.layout.annotations) for frame in fig.frames)
    play, pause = fig.layout.updatemenus[0].buttons
    assert play.args[1]["frame"]["redraw"] is True and pause.args[1]["frame"]["redraw"] is True
    assert all(step.args[1]["frame"]["redraw"] is True for step in fig.layout.sliders[0].steps)


def test_the_dashboard_panel_holds_every_frame_s_arrows(dashboard):
    model, x, run, fig = dashboard
    low, high = fig.layout.xaxis.range
    assert tuple(fig.layout.yaxis.range) == (low, high)
    tips = []
    for frame in fig.frames:
        for trace in frame.data:
            if trace.name in ("b", "W"):
                tips += [*trace.x, *trace.y]
    assert tips and low < min(tips) and max(tips) < high
    # in this run the W arrow reaches well below every point (the data lie in [0, 1]², the ReLU's
    # outputs are >= 0): a range fitted to the points alone would cut it off
    outputs = [trace for frame in fig.frames for trace in frame.data if trace.name == "outputs x'"]
    points = [v for trace in outputs for v in (*trace.x, *trace.y)]
    assert min(tips) < min(min(points), float(x.min())) - 0.3


def test_the_dashboard_loss_axis_has_few_labels_and_the_controls_clear_the_step_label(dashboard):
    fig = dashboard[3]
    assert 2 <= len(fig.layout.yaxis2.tickvals) <= 5
    plot_width = layout.min_width(fig) - fig.layout.margin.l - fig.layout.margin.r
    slider, menu = fig.layout.sliders[0], fig.layout.updatemenus[0]
    # Play and Pause (about 150 px at the left) end before the slider and its "step N" label begin
    assert slider.x * plot_width >= 150 and menu.x == 0 and slider.currentvalue.xanchor in (None, "left")


def test_the_linear_dashboard_and_mapping_draw_with_a_reference_line():
    model = LinearToyModel(ToyModelConfig(n_inst=1, n_features=2, d_hidden=1), device="cpu", seed=0)
    x = generate_data(50, generator=torch.Generator().manual_seed(1))
    run = train_on_dataset(model, x, steps=30, progress=False)
    fig = plots.plot_training_dashboard(model, x, run, optimum=0.04, optimum_label="exact optimum")
    assert "exact optimum" in [trace.name for trace in fig.data]
    mapping = plots.plot_mapping(model, x, title="A map")
    texts = [re.sub(r"<[^>]*>", "", a.text) for a in mapping.layout.annotations]
    assert texts[:3] == ["inputs x", "hidden h = Wx", "outputs x'"] and "A map" in texts[-1]
