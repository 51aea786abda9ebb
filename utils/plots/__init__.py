"""Every figure in the book (plotly only); each function returns a `go.Figure` and never modifies its inputs."""

from utils.plots.curves import plot_curves
from utils.plots.features import (
    plot_cosine_similarities,
    plot_feature_geometry,
    plot_features_in_2d,
    plot_features_in_Nd,
)
from utils.plots.mapping import plot_data, plot_mapping, plot_training_dashboard
from utils.plots.phase import phase_colours, plot_phase_diagram
from utils.plots.renderer import configure_plotly_renderer

__all__ = [
    "configure_plotly_renderer",
    "phase_colours",
    "plot_cosine_similarities",
    "plot_curves",
    "plot_data",
    "plot_feature_geometry",
    "plot_features_in_2d",
    "plot_features_in_Nd",
    "plot_mapping",
    "plot_phase_diagram",
    "plot_training_dashboard",
]
