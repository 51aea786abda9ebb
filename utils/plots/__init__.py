"""Every figure in the book (plotly only); each function returns a `go.Figure` and never modifies its inputs."""

from utils.plots.discrete import plot_features_in_Nd_discrete
from utils.plots.landscape import plot_direction_landscape
from utils.plots.mapping import plot_data, plot_mapping, plot_training_dashboard
from utils.plots.motif import (
    plot_ablation,
    plot_asymmetry,
    plot_motif_frequency,
    plot_motif_trace,
    plot_weight_distributions,
)
from utils.plots.renderer import configure_plotly_renderer

__all__ = [
    "configure_plotly_renderer",
    "plot_ablation",
    "plot_asymmetry",
    "plot_data",
    "plot_direction_landscape",
    "plot_features_in_Nd_discrete",
    "plot_mapping",
    "plot_motif_frequency",
    "plot_motif_trace",
    "plot_training_dashboard",
    "plot_weight_distributions",
]
