"""Every figure in the book (plotly only); each function returns a `go.Figure` and never modifies its inputs.

One module per family of figures; everything is re-exported here, so notebooks call `plots.plot_...`.
"""

# ruff: noqa: F401
from utils.plots.computation import (
    plot_cosine_distribution,
    plot_error_parts,
    plot_frame_spectra,
    plot_weight_heatmaps,
)
from utils.plots.curves import plot_curves
from utils.plots.discrete import plot_features_in_Nd_discrete
from utils.plots.dynamics import plot_attack_terms, plot_feature_trajectories, plot_hidden_points
from utils.plots.features import (
    FEATURE_COLOURS,
    plot_cosine_similarities,
    plot_feature_geometry,
    plot_features_in_2d,
    plot_features_in_Nd,
)
from utils.plots.landscape import plot_direction_landscape
from utils.plots.mapping import plot_data, plot_mapping, plot_training_dashboard
from utils.plots.motif import (
    plot_asymmetry,
    plot_motif_frequency,
    plot_motif_trace,
    plot_weight_distributions,
)
from utils.plots.motif_controls import plot_cancellation_by_kind, plot_path_ablation
from utils.plots.neurons import (
    neuron_bar_traces,
    plot_error_decomposition,
    plot_feature_errors,
    plot_matrices,
    plot_response_curves,
)
from utils.plots.phase import phase_colours, plot_phase_diagram
from utils.plots.regimes import plot_regime_diagram
from utils.plots.renderer import configure_plotly_renderer
from utils.plots.sae import plot_sae_tradeoff
from utils.plots.theory import plot_cell_values, plot_curves_and_points, plot_phase_with_boundaries
