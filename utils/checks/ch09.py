"""Checks for chapter 9's exercises: the SAE's decoder normalisation, forward pass and loss, mean max
cosine similarity, resampling dead latents, how often latents fire given a feature, and TopK.

Each check runs the learner's code next to the library's `utils.sae` on seeded input and raises
AssertionError with what is wrong, naming a likely cause only when the learner's answer matches it.
"""

from __future__ import annotations

import torch

from utils import sae
from utils.checks.compare import (
    assert_close,
    assert_rate,
    assert_tensor,
    build,
    call_learner,
    learner_check,
    passed,
    require_class,
    require_function,
)

_EPS = 1e-8


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _unit(W: torch.Tensor, dim: int) -> torch.Tensor:
    return W / W.norm(dim=dim, keepdim=True).clamp_min(_EPS)


# --- exercise 9.1: the decoder's unit-norm columns -------------------------------------------------


@learner_check(sae.unit_columns, "`utils.sae.unit_columns`")
def check_unit_columns(fn) -> None:
    """Check a learner's `unit_columns(W_dec)`: `(inst, d_in, d_sae)`, each column scaled to length 1, a zero
    column kept at 0, differentiable."""
    require_function(fn, "unit_columns")
    g = torch.Generator().manual_seed(0)
    W = torch.randn(3, 4, 6, generator=g) * torch.rand(3, 1, 6, generator=g) * 3
    W[1, :, 2] = 0.0  # a zero column must stay zero
    given = W.clone().requires_grad_(True)
    got = call_learner("unit_columns", fn, given)
    if not torch.equal(given.detach(), W):
        raise AssertionError("unit_columns modified its input W_dec: return a new tensor (no in-place division)")
    expected = sae.unit_columns(W)
    assert_tensor(got, "unit_columns(W_dec)", tuple(W.shape), "(inst, d_in, d_sae)")
    if not torch.isfinite(got.detach()).all():
        raise AssertionError(
            "unit_columns(W_dec) has NaN or infinity where a column is all zero: guard the division "
            "(clamp the norm away from 0) so that a zero column stays 0"
        )
    assert_close(
        got.detach(), expected, "unit_columns(W_dec)", "(inst, d_in, d_sae)", atol=1e-5, rtol=1e-4,
        rule="Each column W_dec[k, :, j] (latent j's direction, over d_in) should be divided by its own length.",
        mistakes={
            "it normalises rows (over d_sae), not columns: latent j's direction is W_dec[k, :, j], so take the "
            "norm over dim 1 (d_in)": _unit(W, 2),
            "it normalises across instances (dim 0): each instance's columns are normalised on their own, "
            "over d_in": _unit(W, 0),
            "it divides the whole matrix by one norm: each column gets its own length": W
            / W.flatten(1).norm(dim=1)[:, None, None],
            "it divides by the squared norm: divide by the length ‖W_dec[k, :, j]‖ itself": W
            / (W**2).sum(dim=1, keepdim=True).clamp_min(_EPS),
        },
    )
    weights = torch.randn(W.shape, generator=g)
    reference = W.clone().requires_grad_(True)
    (expected_grad,) = torch.autograd.grad((sae.unit_columns(reference) * weights).sum(), reference)
    if not got.requires_grad or got.grad_fn is None:
        raise AssertionError(
            "unit_columns(W_dec) carries no gradient, so the decoder could not train through it: compute it with "
            "torch operations on W_dec itself (no .detach(), .data or torch.no_grad())"
        )
    (grad,) = torch.autograd.grad((got * weights).sum(), given, allow_unused=True)
    nonzero = (W.norm(dim=1) > 0)[:, None, :].expand_as(W)  # a zero column's gradient depends on the guard
    if grad is None or not torch.allclose(grad[nonzero], expected_grad[nonzero], atol=1e-5, rtol=1e-4):
        raise AssertionError(
            "unit_columns(W_dec) has the right values but the wrong gradient: the norm is cut off from autograd "
            "(a .detach() or .item() on it?); the gradient must flow through the division by the norm too, or "
            "training will change the columns' lengths instead of their directions"
        )
    passed("unit_columns")


# --- exercise 9.2: the SAE's forward pass and loss -------------------------------------------------

_CFG = sae.SAEConfig(n_inst=3, d_in=4, d_sae=6)
_L1 = torch.tensor([0.3, 0.0, 1.5])


def _test_activations() -> sae.ToyActivations:
    g = torch.Generator().manual_seed(1)
    probability = torch.full((_CFG.n_inst, 7), 0.4)
    return sae.ToyActivations(sae.SparseUniform(probability), torch.randn(_CFG.n_inst, _CFG.d_in, 7, generator=g))


def _scrambled(model: sae.SparseAutoencoder) -> None:
    """Give `model` parameters where each part of the computation shows: decoder columns of several lengths,
    non-zero biases, some latents off."""
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        model.W_dec.copy_(torch.randn(model.W_dec.shape, generator=g) * 2)
        model.W_enc.copy_(torch.randn(model.W_enc.shape, generator=g))
        model.b_enc.copy_(torch.randn(model.b_enc.shape, generator=g) * 0.5)
        model.b_dec.copy_(torch.randn(model.b_dec.shape, generator=g) * 0.5)


@learner_check(sae.SparseAutoencoder, "`utils.sae.SparseAutoencoder`")
def check_sae(cls) -> None:
    """Check a learner's subclass of `SparseAutoencoder` with `encode(h)`, `decode(z)` and
    `loss_per_instance(out, h)`."""
    require_class(cls, sae.SparseAutoencoder, ("encode", "decode", "loss_per_instance"))
    data = _test_activations()
    model = build(cls, _CFG, data, l1_coefficient=_L1, device="cpu", seed=0)
    reference = sae.SparseAutoencoder(_CFG, data, l1_coefficient=_L1, device="cpu", seed=0)
    _scrambled(model)
    reference.load_state_dict(model.state_dict())
    h = data.sample(32, torch.Generator().manual_seed(3))
    W_enc, b_enc, W_dec, b_dec = (getattr(reference, name).detach() for name in ("W_enc", "b_enc", "W_dec", "b_dec"))

    z = call_learner("encode", model.encode, h)
    expected_z = reference.encode(h).detach()
    pre = torch.einsum("bid,ijd->bij", h - b_dec, W_enc) + b_enc
    assert_close(
        z.detach() if isinstance(z, torch.Tensor) else z, expected_z, "encode(h)", "(batch, inst, d_sae)", atol=1e-5,
        rule="z = ReLU(W_enc (h - b_dec) + b_enc), with W_enc: (inst, d_sae, d_in).",
        mistakes={
            "the ReLU is missing: latents are never negative, z = ReLU(...)": pre,
            "h is not centred: subtract the decoder bias b_dec from h before the encoder": torch.relu(
                torch.einsum("bid,ijd->bij", h, W_enc) + b_enc
            ),
            "the encoder bias b_enc is missing": torch.relu(pre - b_enc),
            "the encoder is applied transposed: W_enc[k] is (d_sae, d_in), row j reads latent j": torch.relu(
                torch.einsum("bid,idj->bij", h - b_dec, W_dec) + b_enc
            ),
        },
    )
    if not z.requires_grad:
        raise AssertionError("encode(h) carries no gradient: do not detach the weights or use torch.no_grad()")

    z_test = torch.relu(torch.randn(32, _CFG.n_inst, _CFG.d_sae, generator=torch.Generator().manual_seed(4)))
    reconstruction = call_learner("decode", model.decode, z_test)
    expected_rec = reference.decode(z_test).detach()
    assert_close(
        reconstruction.detach() if isinstance(reconstruction, torch.Tensor) else reconstruction, expected_rec,
        "decode(z)", "(batch, inst, d_in)", atol=1e-5,
        rule="ĥ = D z + b_dec, D the decoder W_dec with each column scaled to length 1 (your unit_columns).",
        mistakes={
            "the decoder is not normalised: use unit_columns(self.W_dec), each latent's column of length 1": (
                torch.einsum("bij,idj->bid", z_test, W_dec) + b_dec
            ),
            "the decoder's rows are normalised instead of its columns: latent j writes along W_dec[k, :, j]": (
                torch.einsum("bij,idj->bid", z_test, _unit(W_dec, 2)) + b_dec
            ),
            "the decoder bias b_dec is missing: add it back after decoding": torch.einsum(
                "bij,idj->bid", z_test, _unit(W_dec, 1)
            ),
        },
    )

    out = sae.SAEOutput(reference.decode(expected_z).detach(), expected_z)
    loss = call_learner("loss_per_instance", model.loss_per_instance, out, h)
    expected_loss = reference.loss_per_instance(out, h).detach()
    error = ((out.reconstruction - h) ** 2).sum(-1).mean(0)
    l1 = expected_z.abs().sum(-1).mean(0)
    l1_pre = pre.abs().sum(-1).mean(0)
    assert_close(
        loss.detach() if isinstance(loss, torch.Tensor) else loss, expected_loss, "loss_per_instance(out, h)",
        "(inst,)", atol=1e-5, rtol=1e-4,
        rule="Per instance: the mean over the batch of ‖h - ĥ‖² (summed over d_in) plus λ times the mean over "
        "the batch of ‖z‖₁ (summed over latents), λ = self.l1_coefficient[k].",
        mistakes={
            "the L1 penalty is on the wrong tensor: penalise the latents z (out.latents), not the pre-activations": (
                error + _L1 * l1_pre
            ),
            "the L1 penalty is on the wrong tensor: penalise the latents z (out.latents), not the reconstruction": (
                error + _L1 * out.reconstruction.abs().sum(-1).mean(0)
            ),
            "the L1 penalty is on the wrong tensor: penalise the latents z, not the decoder weights": error
            + _L1 * W_dec.abs().sum(dim=(1, 2)),
            "the penalty squares the latents (an L2 penalty): use |z| summed over latents": error
            + _L1 * (expected_z**2).sum(-1).mean(0),
            "the squared error is averaged over d_in: sum it over d_in, average over the batch": (
                ((out.reconstruction - h) ** 2).mean(dim=(0, 2)) + _L1 * l1
            ),
            "the loss is summed over the batch: average it over the batch": (
                ((out.reconstruction - h) ** 2).sum(dim=(0, 2)) + _L1 * expected_z.abs().sum(dim=(0, 2))
            ),
            "every instance uses instance 0's L1 coefficient: self.l1_coefficient holds one per instance": (
                error + _L1[0] * l1
            ),
            "the L1 penalty is missing": error,
        },
    )
    model.zero_grad(set_to_none=True)
    trained = call_learner("loss_per_instance", model.loss_per_instance, model(h), h)
    reference.zero_grad(set_to_none=True)
    reference.calculate_loss(reference(h), h).backward()
    if not isinstance(trained, torch.Tensor) or not trained.requires_grad:
        raise AssertionError("the loss carries no gradient: keep it in torch operations, without .detach() or .item()")
    trained.sum().backward()
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        got_grad, expected_grad = getattr(model, name).grad, getattr(reference, name).grad
        if got_grad is None or not torch.allclose(got_grad, expected_grad, atol=1e-4, rtol=1e-3):
            raise AssertionError(
                f"the loss has the right value but the wrong gradient for {name}: part of the computation is cut off "
                "from autograd (a .detach(), .data or torch.no_grad() in encode, decode or the loss; e.g. the L1 "
                "term must carry a gradient to the encoder)"
            )
    passed("the SAE")


# --- exercise 9.3: mean max cosine similarity ------------------------------------------------------


@learner_check(sae.mmcs, "`utils.sae.mmcs`")
def check_mmcs(fn) -> None:
    """Check a learner's `mmcs(decoder, features)`: `(inst, d_in, d_sae)`, `(inst, d_in, feats)` -> `(inst,)`."""
    require_function(fn, "mmcs")
    g = torch.Generator().manual_seed(5)
    features = torch.randn(3, 4, 5, generator=g) * (0.5 + torch.rand(3, 1, 5, generator=g))
    decoder = torch.randn(3, 4, 7, generator=g) * (0.5 + torch.rand(3, 1, 7, generator=g))
    decoder[0, :, :3] = features[0, :, :3] * 2  # instance 0 finds three features exactly
    decoder[1, :, 0] = -features[1, :, 1]  # an antipodal latent is no match
    decoder[2, :, 4] = 0.0  # a latent with a zero column
    given = decoder.clone(), features.clone()
    got = call_learner("mmcs", fn, *given)
    if not (torch.equal(given[0], decoder) and torch.equal(given[1], features)):
        raise AssertionError("mmcs modified its inputs: compute on new tensors")
    expected = sae.mmcs(decoder, features)
    cosine = torch.einsum("kdj,kdi->kij", _unit(decoder, 1), _unit(features, 1))  # (inst, feats, d_sae)
    dots = torch.einsum("kdj,kdi->kij", decoder, features)
    assert_close(
        got, expected, "mmcs(decoder, features)", "(inst,)", atol=1e-5, rtol=1e-4,
        rule="For each true feature, the largest cosine similarity with any latent's decoder column; then the mean "
        "over features, per instance.",
        mistakes={
            "it takes each latent's best feature and averages over latents: MMCS matches each true feature with its "
            "closest latent, so take the max over latents and the mean over features": cosine.max(1).values.mean(-1),
            "it uses dot products, not cosines: divide by both columns' lengths": dots.max(-1).values.mean(-1),
            "only the decoder is normalised: the features must be unit vectors too": torch.einsum(
                "kdj,kdi->kij", _unit(decoder, 1), features
            ).max(-1).values.mean(-1),
            "it takes |cosine|: a latent pointing opposite to a feature does not find it (latents are non-negative), "
            "so use the signed cosine": cosine.abs().max(-1).values.mean(-1),
            "it averages the cosines over latents instead of taking the best one": cosine.mean(-1).mean(-1),
            "it pools every instance together: each instance's SAE is graded against its own features": cosine.max(
                -1
            ).values.mean().expand(3),
        },
    )
    passed("mmcs")


# --- exercise 9.4: resampling dead latents ---------------------------------------------------------


def _resampling_case(d_sae: int = 8, n_latents: torch.Tensor | None = None):
    """A small SAE whose live latents never fire (so the reconstruction is b_dec = 0 and the squared error of
    input b is ‖h_b‖²), an Adam optimizer with state, dead latents and inputs to pick from. With `n_latents`,
    the latents beyond each instance's count are switched off (all-zero rows) and never in `dead`."""
    cfg = sae.SAEConfig(n_inst=2, d_in=3, d_sae=d_sae)
    data = _test_activations()
    data = sae.ToyActivations(
        sae.SparseUniform(data.features.feature_probability[:2]), data.W[:2, :3]
    )
    model = sae.SparseAutoencoder(cfg, data, l1_coefficient=0.1, n_latents=n_latents, device="cpu", seed=6)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        model.W_enc.mul_(1 + torch.rand(model.W_enc.shape[:2], generator=g)[..., None])
        model.W_dec.mul_(3.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.calculate_loss(model(data.sample(16, g)), data.sample(16, g)).backward()
    optimizer.step()
    with torch.no_grad():
        model.b_enc.fill_(-100.0)
        model.b_dec.zero_()
    dead = torch.zeros(2, d_sae, dtype=torch.bool)
    dead[0, 1::2] = True
    dead[1, -d_sae // 2:] = True
    return model, optimizer, dead & (model.latent_mask > 0)


def _snapshot(model, optimizer):
    params = {name: p.detach().clone() for name, p in model.named_parameters()}
    state = {name: {k: v.clone() for k, v in optimizer.state[p].items() if k != "step"}
             for name, p in model.named_parameters()}  # fmt: skip
    return params, state


@learner_check(sae.resample_dead_latents, "`utils.sae.resample_dead_latents`")
def check_resample(fn) -> None:
    """Check a learner's `resample_dead_latents(model, optimizer, dead, h, generator)` (in place)."""
    require_function(fn, "resample_dead_latents")
    _check_resample_case(fn, None)
    # the second instance uses 6 of its 8 latents: its 2 switched-off latents (all-zero rows) are not live
    _check_resample_case(fn, torch.tensor([8, 6]))

    # the picks follow the squared error squared: two inputs, errors 1 and 3, so P(second) = 9/10 (not 3/4 or 1/2)
    model, optimizer, dead = _resampling_case(d_sae=302)
    dead[:] = False
    dead[0, 2:] = True
    h = torch.zeros(2, 2, 3)
    h[0, :] = torch.tensor([1.0, 0.0, 0.0])
    h[1, :] = torch.tensor([0.0, 3**0.5, 0.0])
    with torch.no_grad():
        call_learner("resample_dead_latents", fn, model, optimizer, dead.clone(), h, torch.Generator().manual_seed(9))
    picked_second = (model.W_dec.detach()[0, 1, 2:] > 0.5).float().mean().item()
    assert_rate(
        picked_second, 0.9, 300,
        "the fraction of dead latents given the input with three times the squared error",
        mistakes={
            "inputs are picked uniformly: pick with probability proportional to the squared error squared": 0.5,
            "inputs are picked in proportion to the squared error: square it once more (Bricken et al. 2023)": 0.75,
            "only the input with the largest error is picked: draw at random, in proportion to the squared error "
            "squared": 1.0,
        },
    )
    passed("resample_dead_latents")


def _check_resample_case(fn, n_latents: torch.Tensor | None) -> None:
    model, optimizer, dead = _resampling_case(n_latents=n_latents)
    switched_on = model.latent_mask > 0
    before, state_before = _snapshot(model, optimizer)
    # inputs: instance 0 has one large input among tiny ones, instance 1 two large ones in other directions
    h = torch.zeros(40, 2, 3)
    h[:, 0, 0], h[:, 1, 1] = 1e-3, 1e-3  # tiny inputs, reconstructed almost exactly
    h[7, 0] = torch.tensor([3.0, 4.0, 0.0])
    h[11, 1] = torch.tensor([0.0, 0.0, -2.0])
    h[23, 1] = torch.tensor([1.0, -1.0, 1.0])
    with torch.no_grad():  # as in training: optimize calls its callback under torch.no_grad()
        call_learner("resample_dead_latents", fn, model, optimizer, dead.clone(), h.clone(), _generator(8))
    after, state_after = _snapshot(model, optimizer)
    live = ~dead
    for name, dim in (("W_dec", 2), ("W_enc", 1), ("b_enc", 1)):
        keep = live if dim == 1 else live[:, None, :].expand_as(after[name])
        if not torch.equal(after[name][keep], before[name][keep]):
            raise AssertionError(f"resampling changed {name} for live latents: change only the latents in `dead`")
    if not torch.equal(after["b_dec"], before["b_dec"]):
        raise AssertionError("resampling changed b_dec: leave the decoder bias alone")
    columns = after["W_dec"].transpose(1, 2)[dead]  # (n_dead, d_in)
    lengths = columns.norm(dim=-1)
    if not torch.allclose(lengths, torch.ones_like(lengths), atol=1e-4):
        raise AssertionError(
            f"a resampled decoder column has length {lengths[(lengths - 1).abs().argmax()]:.4g}: set it to the picked "
            "input's unit direction h / ‖h‖"
        )
    candidates = [_unit(h[[7], 0], -1), _unit(h[[11, 23], 1], -1)]
    for k in range(2):
        for column in after["W_dec"][k].T[dead[k]]:
            match = (column[None] - candidates[k]).abs().max(-1).values < 1e-4
            if not match.any():
                others = candidates[1 - k]
                if ((column[None] - others).abs().max(-1).values < 1e-4).any():
                    raise AssertionError(
                        f"a dead latent of instance {k} got the direction of an input of instance {1 - k}: each "
                        "instance picks among its own inputs h[:, k]"
                    )
                raise AssertionError(
                    f"a dead latent of instance {k} got a direction that is not one of the inputs with a large "
                    "reconstruction error: pick inputs with probability proportional to the square of their squared "
                    "error (most of them have an error near 0 here, so they should almost never be picked)"
                )
    live_norm = (before["W_enc"].norm(dim=-1) * (live & switched_on)).sum(-1) / (live & switched_on).sum(-1)
    rows = after["W_enc"][dead]
    instance = dead.nonzero()[:, 0]
    expected_rows = after["W_dec"].transpose(1, 2)[dead] * 0.2 * live_norm[instance, None]
    if not torch.allclose(rows, expected_rows, atol=1e-4, rtol=1e-3):
        all_norm = before["W_enc"].norm(dim=-1).mean(-1)
        if torch.allclose(rows, after["W_dec"].transpose(1, 2)[dead], atol=1e-4):
            cause = "it is the unit direction itself: scale it to 0.2 times the mean norm of the live latents' rows"
        elif torch.allclose(rows, after["W_dec"].transpose(1, 2)[dead] * 0.2 * all_norm[instance, None], atol=1e-4):
            cause = "it is scaled by the mean norm over all latents: average only over the live ones"
        elif torch.allclose(rows, after["W_dec"].transpose(1, 2)[dead] * 0.2 * (
                (before["W_enc"].norm(dim=-1) * live).sum(-1) / live.sum(-1))[instance, None], atol=1e-4):
            cause = ("its mean norm counts the switched-off latents (model.latent_mask == 0, all-zero rows) as "
                     "live: average only over latents that are switched on and not dead")
        else:
            cause = "it should be the new decoder direction times 0.2 times the mean norm of the live latents' rows"
        raise AssertionError(f"a resampled encoder row is wrong: {cause}")
    if not (after["b_enc"][dead] == 0).all():
        raise AssertionError("a resampled latent's encoder bias is not 0: reset b_enc of each dead latent to 0")
    for name, index in (("W_dec", lambda t: t.transpose(1, 2)[dead]), ("W_enc", lambda t: t[dead]),
                        ("b_enc", lambda t: t[dead])):  # fmt: skip
        for moment in ("exp_avg", "exp_avg_sq"):
            if moment in state_after[name] and not (index(state_after[name][moment]) == 0).all():
                raise AssertionError(
                    f"Adam's {moment} for {name} of a resampled latent is not 0: reset the optimizer's moments of "
                    "the resampled entries (optimizer.state[param]['exp_avg'] and ['exp_avg_sq']), or their old "
                    "momentum pushes the new direction away"
                )
            if moment in state_after[name] and not torch.equal(
                state_after[name][moment][~_dead_mask(name, dead, state_after[name][moment])],
                state_before[name][moment][~_dead_mask(name, dead, state_after[name][moment])],
            ):
                raise AssertionError(
                    f"resampling changed Adam's {moment} of {name} for live latents: reset dead ones only"
                )


def _dead_mask(name: str, dead: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`dead` laid out like the parameter `name`'s tensors."""
    if name == "W_dec":
        return dead[:, None, :].expand_as(like)
    return dead[..., None].expand_as(like) if name == "W_enc" else dead


# --- exercise 9.5: firing given a feature ----------------------------------------------------------


@learner_check(sae.firing_given_feature, "`utils.sae.firing_given_feature`")
def check_firing_given_feature(fn) -> None:
    """Check a learner's `firing_given_feature(latents, features)`: `(batch, inst, d_sae)` and
    `(batch, inst, feats)` -> `(inst, feats, d_sae)`."""
    require_function(fn, "firing_given_feature")
    g = torch.Generator().manual_seed(10)
    features = torch.rand(50, 3, 4, generator=g) * (torch.rand(50, 3, 4, generator=g) < 0.3)
    features[:, 2, 1] = 0.0  # a feature never active: 0 by convention
    latents = torch.relu(torch.randn(50, 3, 5, generator=g) + features[..., :1] * 2 - 0.3)
    given = latents.clone(), features.clone()
    got = call_learner("firing_given_feature", fn, *given)
    if not (torch.equal(given[0], latents) and torch.equal(given[1], features)):
        raise AssertionError("firing_given_feature modified its inputs: compute on new tensors")
    expected = sae.firing_given_feature(latents, features)
    assert_tensor(got, "firing_given_feature(latents, features)", tuple(expected.shape), "(inst, feats, d_sae)")
    if not torch.isfinite(got).all():
        raise AssertionError(
            "firing_given_feature has NaN or infinity for a feature that is never active: divide by at least 1, "
            "so that such a feature gets 0"
        )
    active, fires = (features != 0).float(), (latents > 0).float()
    both = torch.einsum("bki,bkj->kij", active, fires)
    mixed = torch.einsum("bki,blj->kij", active, fires) / 3
    assert_close(
        got, expected, "firing_given_feature(latents, features)", "(inst, feats, d_sae)", atol=1e-5,
        rule="Entry [k, i, j]: among the inputs where feature i is non-zero, the fraction where latent j is > 0.",
        mistakes={
            "it is conditioned the wrong way round (how often the feature is active when the latent fires): divide "
            "by the number of inputs with the feature active": both / fires.sum(0)[:, None, :].clamp_min(1),
            "it divides by the batch size (how often both happen): divide by the number of inputs with feature i "
            "active": both / latents.shape[0],
            "it averages the latents' values: count firing (z > 0), not how strongly": torch.einsum(
                "bki,bkj->kij", active, latents
            ) / active.sum(0)[..., None].clamp_min(1),
            "it counts a latent as firing when z >= 0, which is always: firing means z > 0": torch.einsum(
                "bki,bkj->kij", active, torch.ones_like(latents)
            ) / active.sum(0)[..., None].clamp_min(1),
            "it pairs the features of one instance with the latents of every instance: match them within each "
            "instance": mixed / active.sum(0)[..., None].clamp_min(1),
        },
    )
    passed("firing_given_feature")


# --- exercise 9.6: TopK ----------------------------------------------------------------------------


@learner_check(sae.topk_relu, "`utils.sae.topk_relu`")
def check_topk_relu(fn) -> None:
    """Check a learner's `topk_relu(pre, k)`: `(..., inst, d_sae)` and `k: (inst,)` -> `(..., inst, d_sae)`."""
    require_function(fn, "topk_relu")
    g = torch.Generator().manual_seed(11)
    pre = torch.randn(20, 3, 6, generator=g)
    pre[:4, 1] = -pre[:4, 1].abs()  # inputs with fewer than k positive entries
    k = torch.tensor([1, 3, 2])
    given = pre.clone().requires_grad_(True)
    got = call_learner("topk_relu", fn, given, k.clone())
    if not torch.equal(given.detach(), pre):
        raise AssertionError("topk_relu modified its input: compute on new tensors")
    expected = sae.topk_relu(pre, k)

    def keep(mask):
        return torch.relu(pre) * mask

    kth = lambda n: pre.topk(n, dim=-1).values[..., -1:]  # noqa: E731
    k_max = int(k.max())
    smallest = pre.topk(k_max, dim=-1, largest=False).values.gather(-1, (k - 1).expand(20, 3)[..., None])
    magnitude = pre.abs().topk(k_max, dim=-1).values.gather(-1, (k - 1).expand(20, 3)[..., None])
    assert_close(
        got.detach() if isinstance(got, torch.Tensor) else got, expected, "topk_relu(pre, k)", "(batch, inst, d_sae)",
        atol=1e-6,
        rule="Keep ReLU of the k[inst] largest pre-activations of each input (over d_sae), set the others to 0.",
        mistakes={
            "the ReLU is missing: a kept entry that is negative must become 0": pre * (pre >= expected_kth(pre, k)),
            "every instance keeps k.max() latents: instance k keeps its own k[k]": keep(pre >= kth(k_max)),
            "every instance keeps k[0] latents: instance k keeps its own k[k]": keep(pre >= kth(int(k[0]))),
            "it keeps the smallest entries: keep the largest": keep(pre <= smallest),
            "it ranks by |pre|: rank by the signed pre-activation": keep(pre.abs() >= magnitude),
            "it returns a 0/1 mask: return the kept values themselves": (keep(pre >= expected_kth(pre, k)) > 0).float(),
        },
    )
    if not isinstance(got, torch.Tensor) or not got.requires_grad:
        raise AssertionError("topk_relu carries no gradient: do not detach pre or use torch.no_grad()")
    weights = torch.randn(pre.shape, generator=g)
    reference = pre.clone().requires_grad_(True)
    (expected_grad,) = torch.autograd.grad((sae.topk_relu(reference, k) * weights).sum(), reference)
    (grad,) = torch.autograd.grad((got * weights).sum(), given, allow_unused=True)
    if grad is None or not torch.allclose(grad, expected_grad, atol=1e-6):
        raise AssertionError(
            "topk_relu has the right values but the wrong gradient: the kept latents should pass the gradient of "
            "their values (1), the dropped ones none"
        )
    passed("topk_relu")


def expected_kth(pre: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The k[inst]-th largest entry of each row of `pre`: `(..., inst, 1)`."""
    return pre.topk(int(k.max()), dim=-1).values.gather(-1, (k - 1).expand(*pre.shape[:-1])[..., None])
