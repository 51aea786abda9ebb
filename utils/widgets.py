"""Interactive demos (ipywidgets): sliders that look up precomputed results, so they respond at once."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import ipywidgets as widgets
import plotly.graph_objects as go
from IPython.display import display


def grid_explorer(
    make_figure: Callable[..., go.Figure],
    axes: dict[str, Sequence[float]],
    value_format: str = ".3g",
) -> widgets.VBox:
    """One slider per axis of a precomputed grid; moving a slider redraws `make_figure(*indices)`.

    Args:
        make_figure: called with the index of the chosen value on each axis, in the order of `axes`,
            e.g. `make_figure(3, 0)`; it should only look results up, so that the sliders feel live.
        axes: axis name -> the grid values along it (shown as slider labels), in grid order.
        value_format: format of the slider labels.

    Returns:
        The widget (sliders above the figure), showing the figure for the first value of each axis.
    """
    if not axes:
        raise ValueError("axes must name at least one grid axis")
    sliders = {}
    for name, values in axes.items():
        values = list(values)
        if not values:
            raise ValueError(f"axis {name!r} has no values")
        sliders[name] = widgets.SelectionSlider(
            options=[(format(float(v), value_format), i) for i, v in enumerate(values)],
            value=0,
            description=name,
            continuous_update=True,
            style={"description_width": "initial"},
            layout=widgets.Layout(width="460px"),
        )
    output = widgets.Output()

    def redraw(_=None) -> None:
        figure = make_figure(*(slider.value for slider in sliders.values()))
        with output:
            output.clear_output(wait=True)
            display(figure)

    for slider in sliders.values():
        slider.observe(redraw, names="value")
    redraw()
    return widgets.VBox([*sliders.values(), output])
