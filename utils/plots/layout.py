"""Text that fits the width a figure gets, for every figure in `utils.plots`.

A figure takes the width of the page: in the book the text column (about 380 px on a phone, 900 on
a wide screen), in Jupyter the output area. Plotly neither wraps text nor drops labels that collide,
so each figure function lays its text out for the narrowest width it will be drawn at, its minimum
width: the title wrapped to that width, panel titles wrapped to their panel, tick labels thinned to
the room a panel has, one axis title per row or column, legends below the panels with room for the
rows they need. Any wider, text only gets more room. The minimum width is stored in the layout
(`layout.meta["min_width"]`); the book's renderer gives the figure that width and lets it scroll
sideways inside its own box on a narrower screen (`utils.plots.renderer`).

Figures name their font: Arial, or a font with Arial's metrics where it is missing (Liberation Sans
and Arimo on Linux, Helvetica), so text is as wide for every reader as in the browser tests
(plotly's default, "Open Sans", verdana, ..., gives the much wider Verdana on most Windows and Mac
machines). Widths are estimated from Arial's character widths, with 8% to spare.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import plotly.graph_objects as go

FONT = "Arial, 'Liberation Sans', Arimo, Helvetica, sans-serif"
TITLE_SIZE = 16
PANEL_TITLE_SIZE = 13
AXIS_TITLE_SIZE = 13
TICK_SIZE = 12
LEGEND_SIZE = 12
LINE = 1.3
"""Plotly's line height, in em."""
_ARIAL = dict(zip(
    " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~",
    [278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278] + [556] * 10
    + [278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
       667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556, 556,
       278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334,
       260, 334, 584],
))  # fmt: skip
"""Advance widths of Arial's printable ASCII characters, in thousandths of an em."""
OTHER_CHARACTER = 650
"""Width assumed for any other character (Greek letters, −, ‖, subscripts), in thousandths of an em."""
SPARE = 1.08
TICK_LABEL_HEIGHT = 22
"""Pixels under a plot area taken by x tick labels (and their standoff)."""
AXIS_TITLE_HEIGHT = 22
LEGEND_ROW_HEIGHT = 22
LEGEND_SYMBOL_WIDTH = 46
"""A legend item's symbol and the gaps around it, in px."""
CHROME = 130
"""What a figure's `height` argument holds besides the plot area: a one-line title and the axis labels.
A figure keeps its plot area and grows when its title wraps or its legend needs rows."""
NARROWEST = 340
"""The narrowest figure: a phone's text column, about 380 px, less some room to spare."""
ROOMY = 680
"""The widest minimum worth asking for, to keep titles on one line: an 800 px window's text column
is 736 px, a 1280 px window's 688 px."""


def text_width(text: str, size: float) -> float:
    """Estimated width in px of `text` at font `size` px: its widest `<br>`-separated line, tags dropped."""
    lines = [re.sub(r"<[^>]*>", "", line) for line in re.split(r"<br\s*/?>", str(text))]
    return max(sum(_ARIAL.get(c, OTHER_CHARACTER) for c in line) for line in lines) * size * SPARE / 1000


def line_count(text: str | None) -> int:
    """How many lines `text` takes (its `<br>`s plus one; 0 for no text)."""
    return 0 if not text else len(re.findall(r"<br\s*/?>", str(text))) + 1


def wrap(text: str, width: float, size: float) -> str:
    """`text` with `<br>` between words so that no line is wider than `width` px at font `size`.

    Existing `<br>`s stay; a single word wider than `width` stays whole on its own line.
    """
    lines = []
    for paragraph in re.split(r"<br\s*/?>", str(text)):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if line and text_width(candidate, size) > width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return "<br>".join(lines)


def set_min_width(fig: go.Figure, width: float) -> go.Figure:
    """Record the narrowest width (px) `fig` is laid out for; returns `fig`."""
    meta = fig.layout.meta if isinstance(fig.layout.meta, dict) else {}
    fig.update_layout(meta={**meta, "min_width": int(math.ceil(width))})
    return fig


def min_width(figure: go.Figure | dict) -> int | None:
    """The minimum width recorded by `set_min_width`, from a figure or its dict; None if none."""
    layout = figure.get("layout", {}) if isinstance(figure, dict) else figure.to_plotly_json().get("layout", {})
    meta = layout.get("meta")
    return meta.get("min_width") if isinstance(meta, dict) else None


def title_text(text: str | None, width: float, subtitle: str | None = None) -> tuple[str, float]:
    """A figure title wrapped to `width` px, with an optional smaller subtitle below it; returns the
    text (HTML) and the height in px it takes ("" and 0 for neither)."""
    room = width - 24
    parts, height = [], 0.0
    if text:
        parts.append(wrap(text, room, TITLE_SIZE))
        height += line_count(parts[-1]) * TITLE_SIZE * LINE
    if subtitle:
        size = TICK_SIZE + 1
        lines = wrap(subtitle, room, size).split("<br>")
        parts += [f'<span style="font-size:{size}px">{line}</span>' for line in lines]
        height += len(lines) * size * LINE
    return "<br>".join(parts), height


def title_annotation(text: str, margin: dict) -> dict:
    """The figure title as an annotation at the top left of the figure (plotly's own title misplaces
    text of several lines); `margin` is the layout's margin in px."""
    return dict(
        text=text, name="title", x=0, y=1, xref="paper", yref="paper", xanchor="left", yanchor="top",
        xshift=12 - margin["l"], yshift=margin["t"] - 8, showarrow=False, align="left", font=dict(size=TITLE_SIZE),
    )  # fmt: skip


def legend_height(
    names: list[str], width: float, title: str | None = None, row_height: float = LEGEND_ROW_HEIGHT
) -> float:
    """The height in px of a horizontal legend of `names` in rows `width` px wide (plotly puts the
    items of a wrapping legend in columns as wide as its widest item)."""
    item = LEGEND_SYMBOL_WIDTH + max(text_width(name, LEGEND_SIZE) for name in names)
    room = width - (text_width(title, LEGEND_SIZE) + 10 if title else 0.0)
    rows = math.ceil(len(names) / max(1, int(room // item)))
    return rows * row_height * max(line_count(name) for name in names) + 8


def bottom_legend(top: float, height: float, **kwargs) -> dict:
    """A horizontal legend at the left edge of a figure `height` px tall, its top `top` px from the
    figure's top (in the bottom margin, which must hold it)."""
    return dict(orientation="h", x=0, xref="container", xanchor="left", y=1 - top / height, yref="container",
                yanchor="top", font=dict(size=LEGEND_SIZE), **kwargs)  # fmt: skip


def panel_title(fig: go.Figure, text: str, row: int, col: int, width: float) -> str:
    """Put `text` above the panel at (`row`, `col`), wrapped to `width` px; returns the wrapped text."""
    subplot = fig.get_subplot(row, col)
    x0, x1 = subplot.xaxis.domain
    wrapped = wrap(text, width, PANEL_TITLE_SIZE)
    fig.add_annotation(
        text=wrapped, x=(x0 + x1) / 2, y=subplot.yaxis.domain[1], xref="paper", yref="paper", xanchor="center",
        yanchor="bottom", yshift=4, showarrow=False, font=dict(size=PANEL_TITLE_SIZE),
    )  # fmt: skip
    return wrapped


def titles_height(texts: list[str]) -> float:
    """Pixels that a row of panel titles (wrapped by `panel_title`) takes above its panels."""
    return max((line_count(text) for text in texts), default=0) * PANEL_TITLE_SIZE * LINE + 6


def row_x_title(fig: go.Figure, text: str, row: int, cols: int, ticks: bool = True) -> None:
    """One x-axis title centred under the panels of `row` (columns 1 to `cols`), below their tick labels."""
    first, last = fig.get_subplot(row, 1).xaxis.domain, fig.get_subplot(row, cols).xaxis.domain
    fig.add_annotation(
        text=text, x=(first[0] + last[1]) / 2, y=fig.get_subplot(row, 1).yaxis.domain[0], xref="paper", yref="paper",
        xanchor="center", yanchor="top", yshift=-(TICK_LABEL_HEIGHT if ticks else 4), showarrow=False,
        font=dict(size=AXIS_TITLE_SIZE),
    )  # fmt: skip


def max_ticks(length: float, label_width: float) -> int:
    """How many tick labels `label_width` px wide fit along `length` px with room between them."""
    return max(2, int(length // (label_width + 12)))


def thinned_dtick(n: int, length: float, label_width: float) -> int:
    """A tick step (1, 2, 5, 10, 20, ...) that labels at most what fits of `n` evenly spaced categories."""
    fit = max_ticks(length, label_width)
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 500, 1000):
        if math.ceil(n / step) <= fit:
            return step
    return math.ceil(n / fit)


def log_ticks(low: float, high: float, fit: int = 6) -> dict:
    """Tick values and labels for a log axis from `low` to `high` (> 0), at most `fit` of them: powers
    of ten (with 2 and 5 between them when there is room), else, within less than a decade, round
    values evenly spaced."""
    if not (0 < low <= high and math.isfinite(high)):
        raise ValueError(f"a log axis needs 0 < low <= high, got {low} and {high}")
    if high <= low * (1 + 1e-12):  # one value (e.g. one point): its own label
        return dict(tickvals=[low], ticktext=[f"{low:.3g}"])
    a, b = math.log10(low), math.log10(high)
    inside = lambda values: sorted(v for v in values if low * (1 - 1e-9) <= v <= high * (1 + 1e-9))  # noqa: E731
    powers = inside(10.0**p for p in range(math.floor(a), math.ceil(b) + 1))
    values = inside(m * 10.0**p for p in range(math.floor(a), math.ceil(b) + 1) for m in (1, 2, 5))
    if len(powers) >= 2 and len(values) > fit:
        values = powers[:: math.ceil(len(powers) / fit)]
    if len(powers) < 2 and len(values) < 3:  # within a decade: a linear step of 1, 2 or 5 times a power of ten
        step = (high - low) / max(2, fit - 1)
        power = 10.0 ** math.floor(math.log10(step))
        step = min(m * power for m in (1, 2, 5, 10) if m * power >= step)
        values = inside(k * step for k in range(math.ceil(low / step), math.floor(high / step) + 1))
    if len(values) < 2:
        values = [low, high]
    digits = next(d for d in range(3, 17) if len({f"{v:.{d}g}" for v in values}) == len(values))
    return dict(tickvals=values, ticktext=[f"{v:.{digits}g}" for v in values])


def frame(
    fig: go.Figure,
    title: str | None,
    width: float,
    plot_height: float,
    subtitle: str | None = None,
    top: float = 0.0,
    bottom: float = TICK_LABEL_HEIGHT + AXIS_TITLE_HEIGHT,
    legend_names: list[str] | None = None,
    legend_title: str | None = None,
    left: float = 70,
    right: float = 20,
    title_height: float | None = None,
) -> dict:
    """Lay out `fig` for a minimum width of `width` px: the title (and subtitle) wrapped at the top
    left, `top` px more above the plot area (e.g. the first row's panel titles), a plot area
    `plot_height` px tall, `bottom` px under it for tick labels and axis titles, then the legend (if
    `legend_names`) in as many rows as it needs at that width. Sets the height, margins, title,
    legend and minimum width; returns the margins (px). `title_height` reserves more room for a
    title that changes (an animation's caption).
    """
    text, text_height = title_text(title, width, subtitle)
    text_height = max(text_height, title_height or 0.0)
    sizes = [t.to_plotly_json().get("marker", {}).get("size") for t in fig.data if t.showlegend is not False]
    big = any(isinstance(size, (int, float)) and size > 10 for size in sizes)
    row_height = LEGEND_ROW_HEIGHT + (8 if big else 0)  # large markers make taller legend rows
    legend = legend_height(legend_names, width - 20, legend_title, row_height) if legend_names else 0.0
    margin = dict(
        t=math.ceil(text_height + top + (16 if text_height else 10)),
        b=math.ceil(bottom + legend + (16 if legend else 6)),
        l=left,
        r=right,
    )
    height = round(margin["t"] + plot_height + margin["b"])
    fig.update_layout(height=height, margin=margin, font=dict(family=FONT))
    if text:
        fig.add_annotation(title_annotation(text, margin))
    if legend_names:
        title_ = dict(text=legend_title) if legend_title else None
        fig.update_layout(legend=bottom_legend(margin["t"] + plot_height + bottom + 4, height, title=title_))
    set_min_width(fig, width)
    meta = fig.layout.meta if isinstance(fig.layout.meta, dict) else {}
    fig.update_layout(meta={**meta, "title": re.sub(r"<[^>]*>", " ", text).strip()} if text else meta)
    return margin


def legend_entries(fig: go.Figure) -> list[str]:
    """The names `fig`'s legend will list (traces not hidden from it, one per legend group)."""
    names, groups = [], set()
    for trace in fig.data:
        if trace.showlegend is False or not trace.name:
            continue
        group = getattr(trace, "legendgroup", None)
        if group and group in groups:
            continue
        groups.add(group)
        names.append(trace.name)
    return names


def panel_width(n_cols: int, titles: list[str], least: float, left: float, right: float, gap: float) -> float:
    """The width (px) of a panel at a figure's minimum width: at least `least`, and as wide as the
    widest of `titles` needs to stay on one line as long as the figure stays within `ROOMY` px."""
    widest = max((text_width(t, PANEL_TITLE_SIZE) + 6 for t in titles), default=0.0)
    room = (ROOMY - left - right - (n_cols - 1) * gap) / n_cols
    return max(least, min(widest, room))


def columns(n_cols: int, width: float, left: float, right: float, gap: float) -> tuple[float, float]:
    """`make_subplots`' horizontal spacing for `n_cols` equal columns `gap` px apart at `width` px
    (margins `left` and `right`), and the width of a panel in px."""
    area = width - left - right
    return (gap / area if n_cols > 1 else 0.0), (area - (n_cols - 1) * gap) / n_cols


def stack_rows(fig: go.Figure, heights: list[float], gaps: list[float]) -> float:
    """Give row r of `fig`'s subplot grid a height of `heights[r]` px with `gaps[r]` px above it
    (`gaps[0]` is ignored); returns the height of the plot area in px."""
    total = sum(heights) + sum(gaps[1:])
    top = total
    for r, height in enumerate(heights):
        top -= gaps[r] if r else 0.0
        for c in range(len(fig._grid_ref[r])):
            subplot = fig.get_subplot(r + 1, c + 1)
            if subplot is not None:
                subplot.yaxis.domain = [max(0.0, (top - height) / total), min(1.0, top / total)]
        top -= height
    return total


def place_columns(fig: go.Figure, widths: list[float], gaps: list[float]) -> None:
    """Give column c of `fig`'s subplot grid `widths[c]` px with `gaps[c]` px before it (`gaps[0]` is
    ignored), as fractions of the plot area at the minimum width: wider, all of it scales."""
    total = sum(widths) + sum(gaps[1:])
    left = 0.0
    for c, width in enumerate(widths):
        left += gaps[c] if c else 0.0
        for r in range(len(fig._grid_ref)):
            subplot = fig.get_subplot(r + 1, c + 1)
            if subplot is not None:
                subplot.xaxis.domain = [max(0.0, left / total), min(1.0, (left + width) / total)]
        left += width


def column_y_title(fig: go.Figure, text: str, bottom: float, top: float, shift: float) -> None:
    """One y-axis title for a column of panels spanning `bottom` to `top` (paper fractions), its right
    edge `shift` px left of the plot area (past the tick labels)."""
    fig.add_annotation(
        text=text, x=0, y=(bottom + top) / 2, xref="paper", yref="paper", xanchor="right", yanchor="middle",
        xshift=-shift, textangle=-90, showarrow=False, font=dict(size=AXIS_TITLE_SIZE),
    )  # fmt: skip


def fallback(fig: go.Figure) -> go.Figure:
    """Lay out, in place, a figure its function did not lay out (no minimum width recorded): the named
    font, the title wrapped at the top left, panel titles wrapped to their panel, the legend below the
    plot area, a minimum width of about 200 px per column of panels (at least `NARROWEST`). The book's
    renderer applies it to every figure without a minimum width, so no figure reaches the page
    unprepared; animations are left as they are (their frames carry their own layout). Returns `fig`.
    """
    if min_width(fig) is not None or fig.frames:
        return fig
    axes = fig.to_plotly_json().get("layout", {})
    domains = {tuple(value.get("domain", (0, 1))) for key, value in axes.items() if re.fullmatch(r"xaxis\d*", key)}
    n_cols = max(1, len(domains))
    width = max(NARROWEST, min(ROOMY, 90 + n_cols * 200 + (n_cols - 1) * 30))
    panel = (width - 90 - (n_cols - 1) * 30) / n_cols
    title = fig.layout.title.text
    fig.update_layout(title=dict(text=None))
    top_titles = []
    for annotation in fig.layout.annotations:
        above_a_panel = annotation.xref == "paper" and annotation.yanchor == "bottom" and not annotation.showarrow
        if annotation.text and above_a_panel:
            annotation.text = wrap(annotation.text, panel - 6, annotation.font.size or PANEL_TITLE_SIZE)
            if annotation.y is not None and annotation.y >= 0.99:
                top_titles.append(annotation.text)
    names = legend_entries(fig)
    shown = fig.layout.showlegend is True or (fig.layout.showlegend is None and len(names) > 1)
    plot_height = max(160, (fig.layout.height or 450) - CHROME)
    frame(fig, title, width, plot_height, top=titles_height(top_titles) if top_titles else 0.0,
          legend_names=names if shown and names else None)
    return fig


@dataclass
class KeyGrid:
    """Sizes of a grid of panels with a key column at its top right (from `key_grid`), in px."""

    panel: float
    width: float
    above: float
    row_height: float
    plot_height: float
    key_col: int


def key_grid(
    fig: go.Figure, n_panels: int, n_cols: int, panel_titles: list[str] | None, key_width: float, key_title: str,
    panel_height: float, least: float, left: float, right: float, gap: float, key_gap: float,
) -> KeyGrid:
    """Lay out `fig` (made with `make_subplots(rows, n_cols + 1)`, the key in row 1 of the last column):
    panel columns at least `least` px wide (wider for their titles), the key column `key_width` px
    after `key_gap`, rows `panel_height` px with their wrapped titles above, and the panel titles."""
    n_rows = math.ceil(n_panels / n_cols)
    panel = panel_width(n_cols, panel_titles or [], least, left, right + key_gap + key_width, gap)
    width = left + right + n_cols * panel + (n_cols - 1) * gap + key_gap + key_width
    place_columns(fig, [panel] * n_cols + [key_width], [0.0] + [gap] * (n_cols - 1) + [key_gap])
    titles = [wrap(t, panel, PANEL_TITLE_SIZE) for t in (panel_titles or [])] + [key_title]
    above = titles_height(titles)
    row_height = max(120.0, panel_height - above - 24)
    plot_height = stack_rows(fig, [row_height] * n_rows, [0.0] + [above + 12] * (n_rows - 1))
    for k in range(n_panels if panel_titles else 0):
        panel_title(fig, panel_titles[k], k // n_cols + 1, k % n_cols + 1, panel)
    return KeyGrid(panel, width, above, row_height, plot_height, n_cols + 1)
