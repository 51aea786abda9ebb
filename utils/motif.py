"""The asymmetric superposition motif (Elhage et al. 2022) in `NeuronComputationModel` weights.

For one instance, W1: `(d_hidden, feats)` and W2: `(feats, d_hidden)`; neuron n computes
h_n = ReLU(Σ_f W1[n, f] x_f) and output f is ReLU(Σ_n W2[f, n] h_n + b_f), which should be |x_f|.

- Neuron n *reads* feature f when |W1[n, f]| > `reads`, and *writes* it when W2[f, n] > `writes`
  (writes it *negatively* when W2[f, n] < -`writes`).
- An *asymmetric pair* (n, i, j): n reads and writes both i and j, stores i loudly and j quietly
  (|W1[n, i]| >= ratio |W1[n, j]|) and reads them out the other way round (W2[j, n] >= ratio W2[i, n]).
  Feature i alone, with the sign s = sign(W1[n, i]) that drives n, then leaks W2[j, n] |W1[n, i]| |x_i|
  into output j: large, positive interference.
- Its *leak* is W2[j, n] |W1[n, i]|; the *inhibition* is what the neurons that fire with the same x_i
  (s W1[m, i] > 0) and write j negatively (W2[j, m] < 0) take back: Σ_m s W1[m, i] |W2[j, m]|.
  The *inhibitors* are those m with both weights above the thresholds. Inhibition turns the positive
  interference negative, and the output ReLU makes negative errors free.
- The *motif* (n, i, j): an asymmetric pair whose inhibition cancels at least `cancel` of its leak.
- The detector's *form*: "each" asks each ratio (storage, read-out) to reach `ratio`; "product" asks
  only their product, which is the ratio of the two leaks, leak(i -> j) / leak(j -> i), to reach
  `ratio`².

Shapes: `detect_motif` works on whole batches of instances, `(inst, d_hidden, feats)` and
`(inst, feats, d_hidden)`, and returns `(inst, d_hidden, feats, feats)` indexed [k, n, i, j].

Beyond detection: `shared_pairs` tabulates every shared pair by kind (asymmetric, its reverse,
near-symmetric, other) with its leak, inhibition and whole pre-activation (`pre_activation_alone`);
`trace_motif` follows one motif through three inputs; `path_ablation_study` cuts a motif's inhibitor
-> j weights next to a matched control (`control_paths`) and next to removing the inhibitor neurons;
`LinearOutputModel` is the model without its output ReLU.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from utils.device import make_generator
from utils.models import NeuronComputationModel, ToyModelConfig
from utils.validation import check_positive_int


@dataclass(frozen=True)
class MotifThresholds:
    """What counts as reading, writing, asymmetry and inhibition (see the module docstring).

    Attributes:
        reads: |W1[n, f]| above this means neuron n reads feature f.
        writes: W2[f, n] above this means neuron n writes feature f.
        ratio: how many times larger the loud weight must be than the quiet one, both in W1 and W2.
        cancel: the fraction of the leak that the inhibition must cancel.
    """

    reads: float = 0.1
    writes: float = 0.1
    ratio: float = 2.0
    cancel: float = 0.5

    def __post_init__(self):
        for name in ("reads", "writes", "cancel"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if isinstance(self.ratio, bool) or not isinstance(self.ratio, (int, float)) or not self.ratio > 1:
            raise ValueError(
                f"ratio must be a number above 1 (a ratio of 1 cannot tell loud from quiet), got {self.ratio!r}"
            )


def check_weights(W1: torch.Tensor, W2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Detached `W1: (inst, d_hidden, feats)` and `W2: (inst, feats, d_hidden)` after checking that they match."""
    if not isinstance(W1, torch.Tensor) or W1.dim() != 3:
        shape = tuple(W1.shape) if isinstance(W1, torch.Tensor) else type(W1).__name__
        raise ValueError(f"W1 must be a tensor of shape (inst, d_hidden, feats), got {shape}")
    n_inst, d_hidden, n_features = W1.shape
    if not isinstance(W2, torch.Tensor) or tuple(W2.shape) != (n_inst, n_features, d_hidden):
        shape = tuple(W2.shape) if isinstance(W2, torch.Tensor) else type(W2).__name__
        raise ValueError(
            f"W2 must have shape (inst, feats, d_hidden) = {(n_inst, n_features, d_hidden)} to match W1, got {shape}"
        )
    return W1.detach(), W2.detach()


def leak_and_inhibition(W1: torch.Tensor, W2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What neuron n leaks into output j per unit of x_i, and how much the other neurons take back.

    Returns two `(inst, d_hidden, feats, feats)` tensors indexed [k, n, i, j]:
        leak: W2[j, n] |W1[n, i]|, the push on output j's pre-activation through n when x_i = ±1 drives n.
        inhibition: Σ_m ReLU(s W1[m, i]) ReLU(-W2[j, m]) with s = +1 where W1[n, i] > 0 and -1 elsewhere
            (at W1[n, i] = 0 neuron n does not read i; the value there is never used): the pull-down on
            output j from every neuron that fires with that same x_i and writes j negatively.
    """
    W1, W2 = check_weights(W1, W2)
    out = W2.transpose(1, 2)  # (inst, n, f): out[k, n, f] = W2[k, f, n]
    leak = W1.abs()[..., :, None] * out[..., None, :]
    pull_down = {s: torch.einsum("kmi,kmj->kij", torch.relu(s * W1), torch.relu(-out)) for s in (1, -1)}
    inhibition = torch.where((W1 > 0)[..., :, None], pull_down[1][:, None], pull_down[-1][:, None])
    return leak, inhibition


FORMS = ("each", "product")


def detect_motif(
    W1: torch.Tensor, W2: torch.Tensor, thresholds: MotifThresholds = MotifThresholds(), form: str = "each"
) -> torch.Tensor:
    """Where the asymmetric superposition motif sits: `(inst, d_hidden, feats, feats)` bool, [k, n, i, j].

    True when, in instance k, neuron n reads and writes both i and j (above `reads` and `writes`),
    its storage and read-out are flipped, and the other neurons cancel at least `cancel` of the leak
    into output j (`leak_and_inhibition`). Flipped, with r = `ratio`:
        form "each": |W1[n, i]| >= r |W1[n, j]| and W2[j, n] >= r W2[i, n];
        form "product": leak[n, i, j] >= r² leak[n, j, i], i.e. (|W1[n, i]| / |W1[n, j]|) ·
            (W2[j, n] / W2[i, n]) >= r², the two ratios' product (one may fall short of r).
    """
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    W1, W2 = check_weights(W1, W2)
    t = thresholds
    loudness, out = W1.abs(), W2.transpose(1, 2)  # both (inst, n, f)
    used = (loudness > t.reads) & (out > t.writes)
    both_used = used[..., :, None] & used[..., None, :]
    leak, inhibition = leak_and_inhibition(W1, W2)
    if form == "each":
        loud_in = loudness[..., :, None] >= t.ratio * loudness[..., None, :]  # |W1[n, i]| >= ratio |W1[n, j]|
        loud_out = out[..., None, :] >= t.ratio * out[..., :, None]  # W2[j, n] >= ratio W2[i, n]
        flipped = loud_in & loud_out
    else:
        flipped = leak >= t.ratio**2 * leak.transpose(2, 3)
    return both_used & flipped & (inhibition >= t.cancel * leak)


def pre_activation_alone(W1: torch.Tensor, W2: torch.Tensor, b_final: torch.Tensor) -> torch.Tensor:
    """Output j's whole pre-activation when x_i = s is the only active input, s = sign(W1[n, i]) the sign
    that drives neuron n (-1 where W1[n, i] = 0): Σ_m W2[j, m] ReLU(s W1[m, i]) + b_j.

    Unlike condition 3's leak and inhibition, this counts every neuron, positive pushes from neurons
    other than n included, and the bias. Returns `(inst, d_hidden, feats, feats)` indexed [k, n, i, j].
    """
    W1, W2 = check_weights(W1, W2)
    if tuple(b_final.shape) != (W1.shape[0], W1.shape[2]):
        raise ValueError(
            f"b_final must have shape (inst, feats) = {(W1.shape[0], W1.shape[2])}, got {tuple(b_final.shape)}"
        )
    b = b_final.detach()
    alone = {s: torch.einsum("kmi,kjm->kij", torch.relu(s * W1), W2) + b[:, None, :] for s in (1, -1)}
    return torch.where((W1 > 0)[..., :, None], alone[1][:, None], alone[-1][:, None])


def shared_pairs(
    W1: torch.Tensor, W2: torch.Tensor, b_final: torch.Tensor, thresholds: MotifThresholds = MotifThresholds()
) -> pd.DataFrame:
    """Every shared pair: one row per (instance k, neuron n, features i != j) where n reads and writes
    both i and j (condition 1), in both orders.

    Columns: `instance`, `neuron`, `i`, `j`, `input ratio` |W1[n, i]| / |W1[n, j]|, `output ratio`
    W2[j, n] / W2[i, n], `leak` and `inhibition` (`leak_and_inhibition`), `pre_j alone`
    (`pre_activation_alone`), and `kind`:
        "asymmetric": both ratios >= `ratio` (i stored loudly, j read out loudly: i -> j is the large leak);
        "reverse": the same neuron and features in the other order (j -> i, the small leak);
        "near-symmetric": both ratios strictly between 1/`ratio` and `ratio`;
        "other": the rest (e.g. one feature loud both in and out).
    """
    W1, W2 = check_weights(W1, W2)
    t = thresholds
    loudness, out = W1.abs(), W2.transpose(1, 2)
    used = (loudness > t.reads) & (out > t.writes)
    distinct = ~torch.eye(W1.shape[2], dtype=torch.bool, device=W1.device)
    shared = used[..., :, None] & used[..., None, :] & distinct
    ratio_in = loudness[..., :, None] / loudness[..., None, :]
    ratio_out = out[..., None, :] / out[..., :, None]
    asymmetric = (ratio_in >= t.ratio) & (ratio_out >= t.ratio)
    near = (ratio_in * t.ratio > 1) & (ratio_in < t.ratio) & (ratio_out * t.ratio > 1) & (ratio_out < t.ratio)
    kind = torch.full(shared.shape, 3, dtype=torch.long, device=W1.device)
    kind[near] = 2
    kind[asymmetric.transpose(2, 3)] = 1
    kind[asymmetric] = 0
    leak, inhibition = leak_and_inhibition(W1, W2)
    alone = pre_activation_alone(W1, W2, b_final)
    index = shared.nonzero()
    columns = {
        name: value[shared]
        for name, value in (
            ("input ratio", ratio_in),
            ("output ratio", ratio_out),
            ("leak", leak),
            ("inhibition", inhibition),
            ("pre_j alone", alone),
        )
    }
    frame = pd.DataFrame(
        {
            "instance": index[:, 0].cpu().numpy(),
            "neuron": index[:, 1].cpu().numpy(),
            "i": index[:, 2].cpu().numpy(),
            "j": index[:, 3].cpu().numpy(),
            **{name: value.cpu().numpy() for name, value in columns.items()},
        }
    )
    names = np.array(["asymmetric", "reverse", "near-symmetric", "other"])
    frame["kind"] = names[kind[shared].cpu().numpy()]
    return frame


def instances_with_motif(
    W1: torch.Tensor, W2: torch.Tensor, thresholds: MotifThresholds = MotifThresholds(), form: str = "each"
) -> torch.Tensor:
    """Whether each instance holds the motif anywhere (`detect_motif`): `(inst,)` bool."""
    return detect_motif(W1, W2, thresholds, form).flatten(1).any(dim=1)


@dataclass(frozen=True)
class Motif:
    """One detected motif.

    Attributes:
        instance, neuron: where it sits.
        i: the loudly stored feature (large W1, small W2); alone, it leaks into output j.
        j: the quietly stored feature (small W1, large W2).
        sign: the sign of x_i that drives the neuron (+1 or -1).
        inhibitors: the neurons that fire with sign·x_i and write output j negatively (both above the thresholds).
        leak: W2[j, n] |W1[n, i]|, the push on output j per unit of |x_i| through the neuron.
        inhibition: how much of it the inhibiting neurons take back (see `leak_and_inhibition`).
    """

    instance: int
    neuron: int
    i: int
    j: int
    sign: int
    inhibitors: tuple[int, ...]
    leak: float
    inhibition: float


def find_motifs(
    W1: torch.Tensor, W2: torch.Tensor, thresholds: MotifThresholds = MotifThresholds(), form: str = "each"
) -> list[Motif]:
    """Every detected motif (`detect_motif`), largest leak first within each instance, instances in order."""
    W1, W2 = check_weights(W1, W2)
    leak, inhibition = leak_and_inhibition(W1, W2)
    found = []
    for k, n, i, j in detect_motif(W1, W2, thresholds, form).nonzero().tolist():
        sign = 1 if W1[k, n, i] > 0 else -1
        inhibitors = ((sign * W1[k, :, i] > thresholds.reads) & (W2[k, j, :] < -thresholds.writes)).nonzero()
        found.append(
            Motif(
                instance=k,
                neuron=n,
                i=i,
                j=j,
                sign=sign,
                inhibitors=tuple(inhibitors.flatten().tolist()),
                leak=float(leak[k, n, i, j]),
                inhibition=float(inhibition[k, n, i, j]),
            )
        )
    return sorted(found, key=lambda m: (m.instance, -m.leak))


def strongest_motif_per_instance(motifs: list[Motif]) -> list[Motif]:
    """The motif with the largest leak in each instance that has one (`find_motifs` order)."""
    seen, out = set(), []
    for motif in motifs:
        if motif.instance not in seen:
            seen.add(motif.instance)
            out.append(motif)
    return out


# Hand-built instances (inst = 1, d_hidden = 4, feats = 3), with the paper's illustrative numbers.


def hand_built_motif() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The motif by hand: `(W1 (1, 4, 3), W2 (1, 3, 4), b_final (1, 3))`.

    Neuron 0 stores feature 0 loudly and feature 1 quietly, W1 = [2, -1/2], and reads them out the
    other way round, W2 = [1/2, 2]. Neuron 1 fires with x_0 > 0 and writes output 1 with -5, so
    x_0 = 1 alone gives output 1 the pre-activation 2·2 - 5 = -1 instead of 4. Neuron 2 computes
    ReLU(-x_0), neuron 3 ReLU(x_1); feature 2 is dropped.
    """
    W1 = torch.tensor([[2.0, -0.5, 0.0], [1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    W2 = torch.tensor([[0.5, 0.0, 1.0, 0.0], [2.0, -5.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    return W1[None], W2[None], torch.zeros(1, 3)


def hand_built_pairs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Plain paired neurons, the same sizes as `hand_built_motif`: neurons 0 and 1 compute ReLU(±x_0),
    neurons 2 and 3 ReLU(±x_1), each written back to its own feature; feature 2 is dropped."""
    W1 = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, -1.0, 0.0]])
    W2 = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    return W1[None], W2[None], torch.zeros(1, 3)


def hand_built_variants() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Four ways to break `hand_built_motif`, each changing one to four of its weights, none of them the motif:
    `{description: (W1 (1, 4, 3), W2 (1, 3, 4))}`.

    - "no inhibitor": neuron 1 no longer writes output 1 (W2[1, 1] = 0);
    - "wrong-sign inhibitor": neuron 1 fires for x_0 < 0 (W1[1, 0] = -1), when neuron 0 is silent;
    - "unflipped read-out": neuron 0 reads feature 0 out loudly too (W2[:2, 0] = [2, 1/2]);
    - "symmetric shared neuron": neuron 0 stores and reads out both features alike (W1[0, :2] = [1, -1],
      W2[:2, 0] = [1, 1]).
    """
    W1, W2, _ = hand_built_motif()
    variants = {}
    for name, (which, index, value) in {
        "no inhibitor": ("W2", (0, 1, 1), 0.0),
        "wrong-sign inhibitor": ("W1", (0, 1, 0), -1.0),
        "unflipped read-out": ("W2", (0, slice(0, 2), 0), torch.tensor([2.0, 0.5])),
        "symmetric shared neuron": ("W1", (0, 0, slice(0, 2)), torch.tensor([1.0, -1.0])),
    }.items():
        V1, V2 = W1.clone(), W2.clone()
        (V1 if which == "W1" else V2)[index] = value
        if name == "symmetric shared neuron":
            V2[0, :2, 0] = 1.0
        variants[name] = (V1, V2)
    return variants


def hand_built_near_misses() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Four edits of `hand_built_motif`'s shared neuron 0, each failing exactly one part of the detector's
    conditions for (i, j) = (0, 1) and passing every other: `{description: (W1 (1, 4, 3), W2 (1, 3, 4))}`.

    - "quiet input below reads": W1[0, 1] = -0.05, below `reads` = 0.1 (condition 1, inputs);
    - "quiet read-out below writes": W2[0, 0] = 0.05, below `writes` = 0.1 (condition 1, outputs);
    - "storage not lopsided": W1[0, :2] = [1, -1], storage ratio 1, read-out ratio 4 (condition 2, storage);
    - "read-out not flipped": W1[0, :2] = [2, -1/4], W2[:2, 0] = [1/2, 2/5], storage ratio 8, read-out
      ratio 0.8: i is louder both in and out (condition 2, read-out).
    The last two have a ratio product of at least 4: `detect_motif(..., form="product")` flags them, the
    default form does not; the default thresholds are assumed.
    """
    W1, W2, _ = hand_built_motif()
    edits = {
        "quiet input below reads": ({(0, 0, 1): -0.05}, {}),
        "quiet read-out below writes": ({}, {(0, 0, 0): 0.05}),
        "storage not lopsided": ({(0, 0, 0): 1.0, (0, 0, 1): -1.0}, {}),
        "read-out not flipped": ({(0, 0, 1): -0.25}, {(0, 1, 0): 0.4}),
    }
    near_misses = {}
    for name, (in_edits, out_edits) in edits.items():
        V1, V2 = W1.clone(), W2.clone()
        for index, value in in_edits.items():
            V1[index] = value
        for index, value in out_edits.items():
            V2[index] = value
        near_misses[name] = (V1, V2)
    return near_misses


def model_with_weights(W1: torch.Tensor, W2: torch.Tensor, b_final: torch.Tensor, **kwargs):
    """A `NeuronComputationModel` holding copies of the given weights; `kwargs` (feature_probability,
    importance, device, seed) go to the model."""
    W1, W2 = check_weights(W1, W2)
    n_inst, d_hidden, n_features = W1.shape
    model = NeuronComputationModel(ToyModelConfig(n_inst, n_features, d_hidden), **kwargs)
    if tuple(b_final.shape) != (n_inst, n_features):
        raise ValueError(f"b_final must have shape (inst, feats) = {(n_inst, n_features)}, got {tuple(b_final.shape)}")
    with torch.no_grad():
        for parameter, value in ((model.W1, W1), (model.W2, W2), (model.b_final, b_final)):
            parameter.copy_(value.detach())
    return model


# The mechanism, traced and tested causally on a `NeuronComputationModel`.


@torch.no_grad()
def trace_motif(model, motif: Motif) -> pd.DataFrame:
    """The motif's mechanism on three inputs of unit size: "i alone", "j alone" and "both".

    x_i = motif.sign and x_j = sign(W1[n, j]), the signs that drive the neuron. Columns: the inputs,
    the neuron's activation h_n, the inhibitors' summed activation, the contributions to output j's
    pre-activation from n, from the inhibitors and from everything else (other neurons and the bias),
    the pre-activations and outputs of i and j, and the targets |x_i|, |x_j|.
    """
    k, n, i, j = motif.instance, motif.neuron, motif.i, motif.j
    W1, W2, b = model.W1[k].detach(), model.W2[k].detach(), model.b_final[k].detach()
    sign_j = 1.0 if W1[n, j] > 0 else -1.0
    cases = {"i alone": (motif.sign, 0.0), "j alone": (0.0, sign_j), "both": (motif.sign, sign_j)}
    inhibitors = list(motif.inhibitors)
    rows = {}
    for name, (x_i, x_j) in cases.items():
        x = torch.zeros(model.cfg.n_features, device=W1.device)
        x[i], x[j] = x_i, x_j
        h = torch.relu(W1 @ x)
        pre = W2 @ h + b
        from_n = float(W2[j, n] * h[n])
        from_inhibitors = float(W2[j, inhibitors] @ h[inhibitors])
        rows[name] = {
            "x_i": float(x_i),
            "x_j": float(x_j),
            "h_n": float(h[n]),
            "h_inhibitors": float(h[inhibitors].sum()),
            "j from n": from_n,
            "j from inhibitors": from_inhibitors,
            "j from the rest": float(pre[j]) - from_n - from_inhibitors,
            "pre_i": float(pre[i]),
            "pre_j": float(pre[j]),
            "out_i": float(torch.relu(pre[i])),
            "out_j": float(torch.relu(pre[j])),
            "target_i": abs(float(x_i)),
            "target_j": abs(float(x_j)),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


@torch.no_grad()
def ablate_neurons(model, mask: torch.Tensor):
    """A copy of `model` with the neurons in `mask: (inst, d_hidden)` bool removed (their W1 rows and
    W2 columns set to zero); `model` itself is unchanged."""
    expected = (model.cfg.n_inst, model.cfg.d_hidden)
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != expected:
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"mask must be a bool tensor of shape (inst, d_hidden) = {expected}, got {shape}")
    ablated = copy.deepcopy(model)
    keep = (~mask).to(ablated.W1.dtype).to(ablated.W1.device)
    ablated.W1.mul_(keep[:, :, None])
    ablated.W2.mul_(keep[:, None, :])
    return ablated


def single_feature_batch(
    model, features: torch.Tensor, batch_size: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Inputs where only one feature is active: `(batch, inst, feats)`, feature `features[k]` uniform on
    the model's value range in instance k, every other feature 0.

    Args:
        features: `(inst,)` long, the active feature of each instance.
    """
    check_positive_int(batch_size, "batch_size")
    n_inst, n_features = model.cfg.n_inst, model.cfg.n_features
    if not isinstance(features, torch.Tensor) or tuple(features.shape) != (n_inst,) or features.dtype != torch.long:
        raise ValueError(f"features must be a long tensor of shape (inst,) = ({n_inst},)")
    if ((features < 0) | (features >= n_features)).any():
        raise ValueError(f"features must lie in [0, {n_features})")
    device = model.W1.device
    low, high = model.value_range
    values = low + (high - low) * torch.rand(batch_size, n_inst, device=device, generator=generator)
    batch = torch.zeros(batch_size, n_inst, n_features, device=device)
    batch.scatter_(2, features.to(device)[None, :, None].expand(batch_size, -1, 1), values[..., None])
    return batch


@torch.no_grad()
def loss_on(model, batch: torch.Tensor) -> torch.Tensor:
    """The model's per-instance loss `(inst,)` on `batch: (batch, inst, feats)`."""
    return model.loss_per_instance(model(batch), batch)


def wilson_interval(
    successes: torch.Tensor, trials: torch.Tensor, z: float = 1.96
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Wilson score interval (95% by default) for binomial frequencies successes / trials."""
    successes, trials = torch.as_tensor(successes, dtype=torch.float64), torch.as_tensor(trials, dtype=torch.float64)
    if (trials < 1).any() or (successes < 0).any() or (successes > trials).any():
        raise ValueError("wilson_interval needs 0 <= successes <= trials and trials >= 1")
    rate = successes / trials
    centre = (rate + z**2 / (2 * trials)) / (1 + z**2 / trials)
    half = z * torch.sqrt(rate * (1 - rate) / trials + z**2 / (4 * trials**2)) / (1 + z**2 / trials)
    return (centre - half).clamp_min(0.0), (centre + half).clamp_max(1.0)


def frequency_table(has_motif: torch.Tensor, **labels: torch.Tensor) -> pd.DataFrame:
    """How often the motif appears in each group of instances with equal `labels`.

    Args:
        has_motif: `(inst,)` bool, e.g. from `instances_with_motif`.
        labels: one `(inst,)` tensor per grouping variable, e.g. feature_probability=..., decay=....

    Returns:
        One row per group: the labels, `instances`, `with motif`, `frequency` and its 95% Wilson
        interval `low`, `high`.
    """
    if not isinstance(has_motif, torch.Tensor) or has_motif.dim() != 1 or has_motif.dtype != torch.bool:
        raise ValueError("has_motif must be a bool tensor of shape (inst,)")
    if not labels:
        raise ValueError("give at least one label to group by, e.g. feature_probability=...")
    for name, values in labels.items():
        if not isinstance(values, torch.Tensor) or tuple(values.shape) != tuple(has_motif.shape):
            raise ValueError(f"label {name} must be a tensor of shape (inst,) = {tuple(has_motif.shape)}")
    frame = pd.DataFrame({name: values.detach().cpu().numpy().round(6) for name, values in labels.items()})
    frame["motif"] = has_motif.cpu().numpy()
    table = frame.groupby(list(labels), as_index=False).agg(
        instances=("motif", "size"), **{"with motif": ("motif", "sum")}
    )
    table["frequency"] = table["with motif"] / table["instances"]
    low, high = wilson_interval(
        torch.tensor(table["with motif"].to_numpy()), torch.tensor(table["instances"].to_numpy())
    )
    table["low"], table["high"] = low.numpy(), high.numpy()
    return table


@torch.no_grad()
def cut_output_weights(model, mask: torch.Tensor):
    """A copy of `model` with the output weights W2[k, f, m] in `mask: (inst, feats, d_hidden)` bool set to
    zero (the paths from neuron m into output f); `model` itself is unchanged."""
    expected = (model.cfg.n_inst, model.cfg.n_features, model.cfg.d_hidden)
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != expected:
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"mask must be a bool tensor of shape (inst, feats, d_hidden) = {expected}, got {shape}")
    cut = copy.deepcopy(model)
    cut.W2.masked_fill_(mask.to(cut.W2.device), 0.0)
    return cut


@torch.no_grad()
def per_output_loss(model, batch: torch.Tensor) -> torch.Tensor:
    """Each output's part of the model's loss on `batch: (batch, inst, feats)`: `(inst, feats)`, the
    importance-weighted squared error of output f averaged over the batch and divided by the number of
    features, so that it sums over f to `loss_on(model, batch)`."""
    error = model(batch) - model.target(batch)
    return (model.importance * error * error).mean(dim=0) / model.cfg.n_features


def control_paths(
    W1: torch.Tensor, W2: torch.Tensor, motif: Motif, thresholds: MotifThresholds = MotifThresholds()
) -> list[tuple[int, int]] | None:
    """The matched control for cutting `motif`'s inhibitor -> j paths: as many other inhibitor-shaped paths,
    the strongest there are, as `[(output f, neuron m), ...]`, or None when there are too few.

    An inhibitor-shaped path m -> f fires with the same x_i and pulls an output down, like the motif's:
    neuron m != n fires with it (s W1[m, i] > `reads`, s = motif.sign), W2[f, m] < -`writes`, and f is
    neither i nor j. Its strength is s W1[m, i] |W2[f, m]|, the pull-down per unit of |x_i|; the
    strongest are taken so that the control is as hard to beat as the model allows.
    """
    W1, W2 = check_weights(W1, W2)
    k, s = motif.instance, motif.sign
    fires = s * W1[k, :, motif.i] > thresholds.reads  # (d_hidden,)
    fires[motif.neuron] = False
    pulls = W2[k] < -thresholds.writes  # (feats, d_hidden)
    pulls[[motif.i, motif.j]] = False
    candidates = (pulls & fires[None, :]).nonzero().tolist()
    if len(candidates) < len(motif.inhibitors):
        return None
    strength = [float(s * W1[k, m, motif.i] * -W2[k, f, m]) for f, m in candidates]
    order = sorted(range(len(candidates)), key=lambda c: -strength[c])
    return [tuple(candidates[c]) for c in order[: len(motif.inhibitors)]]


@torch.no_grad()
def path_ablation_study(
    model, motifs: list[Motif], thresholds: MotifThresholds = MotifThresholds(), batch_size: int = 4096, seed: int = 0
) -> pd.DataFrame:
    """Cut each motif's inhibitor -> j weights, W2[j, m] for its inhibitors m, and measure the loss on inputs
    where only its feature i is active (`single_feature_batch`, drawn with `seed`).

    At most one motif per instance (e.g. `strongest_motif_per_instance`). Three interventions, each on
    its own copy of the model: the *path cut* (only W2[j, m]); the *control*, which cuts as many of the
    strongest other inhibitor-shaped paths that fire with the same x_i (`control_paths`); and the *neuron
    removal*, which removes the inhibitor neurons whole (`ablate_neurons`), so that every output they
    write loses them, output i included.

    Returns:
        One row per motif: `instance`, `neuron`, `i`, `j`, `inhibitors` (how many), `leak`;
        `strength cut` and `control strength` (Σ s W1[m, i] |W2[f, m]| over the cut paths; the control's
        is NaN when no control exists); the losses `loss intact`, `loss, paths cut`, `loss, control`
        (NaN without a control), `loss, neurons removed`; output j's part `j loss intact`,
        `j loss, paths cut`; and `share on i`, `share on j`: the parts of the neuron removal's loss
        increase that fall on outputs i and j.
    """
    if len({m.instance for m in motifs}) != len(motifs):
        raise ValueError("give at most one motif per instance (see strongest_motif_per_instance)")
    n_inst, n_features, d_hidden = model.cfg.n_inst, model.cfg.n_features, model.cfg.d_hidden
    W1, W2 = model.W1.detach(), model.W2.detach()
    features = torch.zeros(n_inst, dtype=torch.long)
    paths = torch.zeros(n_inst, n_features, d_hidden, dtype=torch.bool)
    control = torch.zeros(n_inst, n_features, d_hidden, dtype=torch.bool)
    neurons = torch.zeros(n_inst, d_hidden, dtype=torch.bool)
    strengths = {}
    for m in motifs:
        k, drive = m.instance, W1[m.instance, :, m.i] * m.sign
        features[k] = m.i
        paths[k, m.j, list(m.inhibitors)] = True
        neurons[k, list(m.inhibitors)] = True
        chosen = control_paths(W1, W2, m, thresholds)
        for f, q in chosen or []:
            control[k, f, q] = True
        strengths[k] = (
            float(sum(drive[q] * -W2[k, m.j, q] for q in m.inhibitors)),
            float(sum(drive[q] * -W2[k, f, q] for f, q in chosen)) if chosen is not None else float("nan"),
        )
    batch = single_feature_batch(model, features, batch_size, make_generator(seed, model.W1.device))
    losses = {
        name: per_output_loss(variant, batch).cpu()
        for name, variant in (
            ("intact", model),
            ("paths", cut_output_weights(model, paths)),
            ("control", cut_output_weights(model, control)),
            ("neurons", ablate_neurons(model, neurons)),
        )
    }
    rows = []
    for m in motifs:
        k = m.instance
        increase = losses["neurons"][k] - losses["intact"][k]  # (feats,)
        has_control = not math.isnan(strengths[k][1])
        rows.append(
            {
                "instance": k,
                "neuron": m.neuron,
                "i": m.i,
                "j": m.j,
                "inhibitors": len(m.inhibitors),
                "leak": m.leak,
                "strength cut": strengths[k][0],
                "control strength": strengths[k][1],
                "loss intact": float(losses["intact"][k].sum()),
                "loss, paths cut": float(losses["paths"][k].sum()),
                "loss, control": float(losses["control"][k].sum()) if has_control else float("nan"),
                "loss, neurons removed": float(losses["neurons"][k].sum()),
                "j loss intact": float(losses["intact"][k, m.j]),
                "j loss, paths cut": float(losses["paths"][k, m.j]),
                "share on i": float(increase[m.i] / increase.sum()),
                "share on j": float(increase[m.j] / increase.sum()),
            }
        )
    return pd.DataFrame(rows)


class LinearOutputModel(NeuronComputationModel):
    """Chapter 5's model without the output ReLU: x' = W2 ReLU(W1 x) + b, target |x| (the parameters,
    data law and loss of `NeuronComputationModel`). With no ReLU at the end, an output pushed below zero
    costs as much as one pushed above it.

    `step_gradients = None`: the parent's hand-written gradients are those of the ReLU output, so
    `utils.train.optimize` trains this model with autograd.
    """

    step_gradients = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`(..., inst, feats) -> (..., inst, feats)`."""
        return torch.einsum("...ih,ifh->...if", self.hidden(x), self.W2) + self.b_final
