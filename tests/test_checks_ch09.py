"""Chapter 9's checks accept correct answers written in several ways and reject planted mistakes, each with a
message that names it. The mistakes are written from the exercise text, as a learner would make them."""

import pytest
import torch
import torch.nn.functional as F

from utils import checks, sae

# --- exercise 9.1: unit_columns --------------------------------------------------------------------


def unit_columns_loop(W):
    columns = []
    for k in range(W.shape[0]):
        columns.append(torch.stack([W[k, :, j] / max(W[k, :, j].norm(), 1e-8) for j in range(W.shape[2])], dim=1))
    return torch.stack(columns)


@pytest.mark.parametrize(
    "correct",
    [
        sae.unit_columns,
        unit_columns_loop,
        lambda W: F.normalize(W, dim=1),
        lambda W: W * torch.rsqrt((W**2).sum(dim=1, keepdim=True).clamp_min(1e-16)),
    ],
)
def test_unit_columns_check_accepts(correct, capsys):
    assert checks.check_unit_columns(correct) is correct
    assert "unit_columns: all checks passed" in capsys.readouterr().out


def unit_columns_in_place(W):
    with torch.no_grad():
        W /= W.norm(dim=1, keepdim=True).clamp_min(1e-8)
    return W


@pytest.mark.parametrize(
    "fn, message",
    [
        (lambda W: W / W.norm(dim=2, keepdim=True).clamp_min(1e-8), "normalises rows"),
        (lambda W: W / W.norm(dim=0, keepdim=True).clamp_min(1e-8), "normalises across instances"),
        (lambda W: W / W.flatten(1).norm(dim=1)[:, None, None], "divides the whole matrix by one norm"),
        (lambda W: W / (W**2).sum(dim=1, keepdim=True).clamp_min(1e-8), "divides by the squared norm"),
        # structure: zero columns, gradients, the input
        (lambda W: W / W.norm(dim=1, keepdim=True), "NaN or infinity where a column is all zero"),
        (lambda W: W / W.norm(dim=1, keepdim=True).clamp_min(1e-8).detach(), "the wrong gradient"),
        (lambda W: W.detach() / W.detach().norm(dim=1, keepdim=True).clamp_min(1e-8), "carries no gradient"),
        (unit_columns_in_place, "modified its input"),
        (lambda W: W.norm(dim=1), r"has shape \(3, 6\); expected \(inst, d_in, d_sae\)"),
    ],
)
def test_unit_columns_check_rejects(fn, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_unit_columns(fn)


# --- exercise 9.2: the SAE ---------------------------------------------------------------------------


def sae_class(encode=None, decode=None, loss=None):
    """A subclass of SparseAutoencoder with the given methods (the library's where None)."""

    def library_encode(self, h):
        return torch.relu(torch.einsum("...id,ijd->...ij", h - self.b_dec, self.W_enc) + self.b_enc)

    def library_decode(self, z):
        return torch.einsum("...ij,idj->...id", z, sae.unit_columns(self.W_dec)) + self.b_dec

    def library_loss(self, out, h):
        error = ((out.reconstruction - h) ** 2).sum(-1).mean(0)
        return error + self.l1_coefficient * out.latents.abs().sum(-1).mean(0)

    methods = {"encode": encode or library_encode, "decode": decode or library_decode,
               "loss_per_instance": loss or library_loss}  # fmt: skip
    return type("MySAE", (sae.SparseAutoencoder,), methods)


def loop_encode(self, h):
    z = torch.zeros(*h.shape[:-1], self.cfg.d_sae)
    for k in range(self.cfg.n_inst):
        z[:, k] = torch.relu((h[:, k] - self.b_dec[k]) @ self.W_enc[k].T + self.b_enc[k])
    return z


def loop_decode(self, z):
    D = F.normalize(self.W_dec, dim=1)
    return torch.stack([z[:, k] @ D[k].T + self.b_dec[k] for k in range(self.cfg.n_inst)], dim=1)


def loop_loss(self, out, h):
    rows = []
    for k in range(self.cfg.n_inst):
        error = (out.reconstruction[:, k] - h[:, k]).pow(2).sum(-1)
        rows.append((error + self.l1_coefficient[k] * out.latents[:, k].abs().sum(-1)).mean())
    return torch.stack(rows)


@pytest.mark.parametrize(
    "correct",
    [
        sae_class(),
        sae_class(loop_encode, loop_decode, loop_loss),
        sae_class(loss=lambda self, out, h: torch.linalg.vector_norm(out.reconstruction - h, dim=-1).pow(2).mean(0)
                  + self.l1_coefficient * torch.linalg.vector_norm(out.latents, ord=1, dim=-1).mean(0)),
    ],
)
def test_sae_check_accepts(correct, capsys):
    assert checks.check_sae(correct) is correct
    assert "the SAE: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "cls, message",
    [
        (sae_class(encode=lambda s, h: torch.einsum("...id,ijd->...ij", h - s.b_dec, s.W_enc) + s.b_enc),
         "the ReLU is missing"),
        (sae_class(encode=lambda s, h: torch.relu(torch.einsum("...id,ijd->...ij", h, s.W_enc) + s.b_enc)),
         "subtract the decoder bias"),
        (sae_class(decode=lambda s, z: torch.einsum("...ij,idj->...id", z, s.W_dec) + s.b_dec),
         "the decoder is not normalised"),
        (sae_class(decode=lambda s, z: torch.einsum("...ij,idj->...id", z, F.normalize(s.W_dec, dim=2)) + s.b_dec),
         "rows are normalised instead of its columns"),
        (sae_class(decode=lambda s, z: torch.einsum("...ij,idj->...id", z, F.normalize(s.W_dec, dim=1))),
         "the decoder bias b_dec is missing"),
        # structure: the L1 penalty on the wrong tensor, per-instance coefficients, missing gradients
        (sae_class(loss=lambda s, out, h: ((out.reconstruction - h) ** 2).sum(-1).mean(0)
                   + s.l1_coefficient * out.reconstruction.abs().sum(-1).mean(0)), "not the reconstruction"),
        (sae_class(loss=lambda s, out, h: ((out.reconstruction - h) ** 2).sum(-1).mean(0)
                   + s.l1_coefficient * s.W_dec.abs().sum(dim=(1, 2))), "not the decoder weights"),
        (sae_class(loss=lambda s, out, h: ((out.reconstruction - h) ** 2).sum(-1).mean(0)
                   + s.l1_coefficient[0] * out.latents.abs().sum(-1).mean(0)), "instance 0's L1 coefficient"),
        (sae_class(loss=lambda s, out, h: ((out.reconstruction - h) ** 2).mean(dim=(0, 2))
                   + s.l1_coefficient * out.latents.abs().sum(-1).mean(0)), "averaged over d_in"),
        (sae_class(loss=lambda s, out, h: ((out.reconstruction - h) ** 2).sum(-1).mean(0)
                   + s.l1_coefficient * (out.latents**2).sum(-1).mean(0)), "an L2 penalty"),
        (sae_class(loss=lambda s, out, h: ((out.reconstruction - h) ** 2).sum(-1).mean(0)
                   + s.l1_coefficient * out.latents.detach().abs().sum(-1).mean(0)), "wrong gradient for W_enc"),
        (sae_class(decode=lambda s, z: torch.einsum("...ij,idj->...id", z, F.normalize(s.W_dec.detach(), dim=1))
                   + s.b_dec), "wrong gradient for W_dec"),
        (sae.SparseAutoencoder, "does not define encode"),
    ],
)
def test_sae_check_rejects(cls, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_sae(cls)


# --- exercise 9.3: mmcs ----------------------------------------------------------------------------


def mmcs_loop(decoder, features):
    result = torch.zeros(decoder.shape[0])
    for k in range(decoder.shape[0]):
        best = []
        for i in range(features.shape[2]):
            f = features[k, :, i] / features[k, :, i].norm()
            best.append(max(float(decoder[k, :, j] @ f / max(decoder[k, :, j].norm(), 1e-8))
                            for j in range(decoder.shape[2])))  # fmt: skip
        result[k] = sum(best) / len(best)
    return result


@pytest.mark.parametrize(
    "correct",
    [
        sae.mmcs,
        mmcs_loop,
        lambda D, W: (F.normalize(W, dim=1).transpose(1, 2) @ F.normalize(D, dim=1)).amax(-1).mean(-1),
    ],
)
def test_mmcs_check_accepts(correct, capsys):
    assert checks.check_mmcs(correct) is correct
    assert "mmcs: all checks passed" in capsys.readouterr().out


def cos(D, W):
    return F.normalize(W, dim=1).transpose(1, 2) @ F.normalize(D, dim=1)  # (inst, feats, d_sae)


@pytest.mark.parametrize(
    "fn, message",
    [
        (lambda D, W: cos(D, W).amax(1).mean(-1), "averages over latents: MMCS matches each true feature"),
        (lambda D, W: (W.transpose(1, 2) @ D).amax(-1).mean(-1), "uses dot products"),
        (lambda D, W: (W.transpose(1, 2) @ F.normalize(D, dim=1)).amax(-1).mean(-1), "features must be unit"),
        (lambda D, W: cos(D, W).abs().amax(-1).mean(-1), r"\|cosine\|"),
        (lambda D, W: cos(D, W).mean(-1).mean(-1), "instead of taking the best one"),
        # structure: instances pooled, shape
        (lambda D, W: cos(D, W).amax(-1).mean().expand(W.shape[0]), "pools every instance together"),
        (lambda D, W: cos(D, W).amax(-1), r"has shape \(3, 5\); expected \(inst,\)"),
        (lambda D, W: float(cos(D, W).amax(-1).mean()), "should be a torch.Tensor"),
    ],
)
def test_mmcs_check_rejects(fn, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_mmcs(fn)


# --- exercise 9.4: resampling dead latents -----------------------------------------------------------


def resample_loop(model, optimizer, dead, h, generator=None):
    """Bricken et al.'s resampling, one dead latent at a time."""
    error = ((model(h).reconstruction - h) ** 2).sum(-1)
    for k in range(dead.shape[0]):
        live = ~dead[k] & (model.latent_mask[k] > 0)
        live_norm = model.W_enc[k, live].norm(dim=-1).mean() if live.any() else torch.tensor(1.0)
        for j in dead[k].nonzero().flatten().tolist():
            b = int(torch.multinomial(error[:, k] ** 2, 1, generator=generator))
            direction = h[b, k] / h[b, k].norm()
            model.W_dec[k, :, j] = direction
            model.W_enc[k, j] = 0.2 * live_norm * direction
            model.b_enc[k, j] = 0.0
            for p, index in ((model.W_dec, (k, slice(None), j)), (model.W_enc, (k, j)), (model.b_enc, (k, j))):
                for moment in ("exp_avg", "exp_avg_sq"):
                    optimizer.state[p][moment][index] = 0.0


def resample_cumulative(model, optimizer, dead, h, generator=None):
    """The same, picking each input by inverting the cumulative distribution of the weights."""
    error = ((model(h).reconstruction - h) ** 2).sum(-1).T ** 2  # (inst, batch)
    cdf = error.cumsum(-1) / error.sum(-1, keepdim=True)
    norms = model.W_enc.norm(dim=-1)
    for k, j in dead.nonzero().tolist():
        b = int(torch.searchsorted(cdf[k], torch.rand(1, generator=generator)).clamp_max(h.shape[0] - 1))
        direction = h[b, k] / h[b, k].norm()
        model.W_dec[k, :, j] = direction
        model.W_enc[k, j] = 0.2 * norms[k][~dead[k] & (model.latent_mask[k] > 0)].mean() * direction
        model.b_enc[k, j] = 0.0
        for p, index in ((model.W_dec, (k, slice(None), j)), (model.W_enc, (k, j)), (model.b_enc, (k, j))):
            for moment in ("exp_avg", "exp_avg_sq"):
                optimizer.state[p][moment][index] = 0.0


@pytest.mark.parametrize("correct", [sae.resample_dead_latents, resample_loop, resample_cumulative])
def test_resample_check_accepts(correct, capsys):
    assert checks.check_resample(correct) is correct
    assert "resample_dead_latents: all checks passed" in capsys.readouterr().out


def resample_variant(weights="squared", scale="live", reset_adam=True, live_too=False, bias=True, unit=True,
                     other_instance=False):  # fmt: skip
    """`resample_loop` with one thing changed."""

    def fn(model, optimizer, dead, h, generator=None):
        error = ((model(h).reconstruction - h) ** 2).sum(-1)
        chosen = dead | live_too
        norms = model.W_enc.norm(dim=-1).clone()
        for k in range(dead.shape[0]):
            switched_on = model.latent_mask[k] > 0 if scale == "live" else torch.ones_like(dead[k])
            live_norm = norms[k, ~dead[k] & switched_on].mean() if scale in ("live", "unmasked") else norms[k].mean()
            source = 1 - k if other_instance else k
            w = {"squared": error[:, source] ** 2, "error": error[:, source],
                 "uniform": torch.ones_like(error[:, source])}[weights]  # fmt: skip
            for j in chosen[k].nonzero().flatten().tolist():
                b = int(torch.multinomial(w, 1, generator=generator))
                direction = h[b, source] / h[b, source].norm() if unit else h[b, source]
                model.W_dec[k, :, j] = direction
                model.W_enc[k, j] = (0.2 * live_norm if scale else 1.0) * direction
                if bias:
                    model.b_enc[k, j] = 0.0
                if reset_adam:
                    for p, index in ((model.W_dec, (k, slice(None), j)), (model.W_enc, (k, j)), (model.b_enc, (k, j))):
                        for moment in ("exp_avg", "exp_avg_sq"):
                            optimizer.state[p][moment][index] = 0.0

    return fn


@pytest.mark.parametrize(
    "fn, message",
    [
        # distribution of the picks
        (resample_variant(weights="uniform"), "not one of the inputs with a large reconstruction error"),
        (resample_variant(weights="error"), "in proportion to the squared error: square it once more"),
        # structure: which latents, which instance, which parameters
        (resample_variant(live_too=True), "changed W_dec for live latents"),
        (resample_variant(other_instance=True), "an input of instance 1"),
        (resample_variant(unit=False), "a resampled decoder column has length"),
        (resample_variant(scale=None), "it is the unit direction itself"),
        (resample_variant(scale="all"), "mean norm over all latents"),
        (resample_variant(scale="unmasked"), "counts the switched-off latents"),
        (resample_variant(bias=False), "encoder bias is not 0"),
        (resample_variant(reset_adam=False), "Adam's exp_avg for W_dec"),
    ],
)
def test_resample_check_rejects(fn, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_resample(fn)


# --- exercise 9.5: firing given a feature ------------------------------------------------------------


def firing_loop(latents, features):
    n_inst, n_features, d_sae = latents.shape[1], features.shape[2], latents.shape[2]
    result = torch.zeros(n_inst, n_features, d_sae)
    for k in range(n_inst):
        for i in range(n_features):
            rows = features[:, k, i] != 0
            if rows.any():
                result[k, i] = (latents[rows, k] > 0).float().mean(0)
    return result


@pytest.mark.parametrize(
    "correct",
    [
        sae.firing_given_feature,
        firing_loop,
        lambda z, x: torch.nan_to_num(
            ((x != 0).float().permute(1, 2, 0) @ (z > 0).float().transpose(0, 1)) / (x != 0).sum(0)[..., None]
        ),
    ],
)
def test_firing_given_feature_check_accepts(correct, capsys):
    assert checks.check_firing_given_feature(correct) is correct
    assert "firing_given_feature: all checks passed" in capsys.readouterr().out


def joint(z, x):
    return torch.einsum("bki,bkj->kij", (x != 0).float(), (z > 0).float())


@pytest.mark.parametrize(
    "fn, message",
    [
        (lambda z, x: joint(z, x) / (z > 0).sum(0)[:, None, :].clamp_min(1), "conditioned the wrong way round"),
        (lambda z, x: joint(z, x) / z.shape[0], "divides by the batch size"),
        (lambda z, x: torch.einsum("bki,bkj->kij", (x != 0).float(), z) / (x != 0).sum(0)[..., None].clamp_min(1),
         "averages the latents' values"),
        (lambda z, x: torch.einsum("bki,bkj->kij", (x != 0).float(), (z >= 0).float())
         / (x != 0).sum(0)[..., None].clamp_min(1), "z >= 0"),
        # structure: never-active features, instances mixed, layout
        (lambda z, x: joint(z, x) / (x != 0).sum(0)[..., None], "never active"),
        (lambda z, x: torch.einsum("bki,blj->kij", (x != 0).float(), (z > 0).float()) / z.shape[1]
         / (x != 0).sum(0)[..., None].clamp_min(1), "latents of every instance"),
        (lambda z, x: sae.firing_given_feature(z, x).transpose(1, 2), r"expected \(inst, feats, d_sae\)"),
    ],
)
def test_firing_given_feature_check_rejects(fn, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_firing_given_feature(fn)


# --- exercise 9.6: topk_relu -------------------------------------------------------------------------


def topk_scatter(pre, k):
    out = torch.zeros_like(pre)
    for i in range(pre.shape[-2]):
        values, index = pre[..., i, :].topk(int(k[i]), dim=-1)
        out[..., i, :] = torch.zeros_like(pre[..., i, :]).scatter(-1, index, torch.relu(values))
    return out


def topk_sort(pre, k):
    order = pre.argsort(dim=-1, descending=True).argsort(dim=-1)  # rank of each entry, 0 = largest
    return torch.relu(pre) * (order < k[:, None])


@pytest.mark.parametrize("correct", [sae.topk_relu, topk_scatter, topk_sort])
def test_topk_relu_check_accepts(correct, capsys):
    assert checks.check_topk_relu(correct) is correct
    assert "topk_relu: all checks passed" in capsys.readouterr().out


def keep_top(pre, n, key=lambda p: p, largest=True):
    index = key(pre).topk(n, dim=-1, largest=largest).indices
    return torch.zeros_like(pre).scatter(-1, index, 1.0)


@pytest.mark.parametrize(
    "fn, message",
    [
        (lambda pre, k: pre * (pre.argsort(-1, descending=True).argsort(-1) < k[:, None]), "the ReLU is missing"),
        (lambda pre, k: torch.relu(pre) * keep_top(pre, int(k.max())), "keeps k.max"),
        (lambda pre, k: torch.relu(pre) * keep_top(pre, int(k[0])), "keeps k\\[0\\]"),
        (lambda pre, k: torch.relu(pre) * torch.stack([keep_top(pre[..., i, :], int(k[i]), largest=False)
                                                       for i in range(3)], -2), "keeps the smallest"),
        (lambda pre, k: torch.relu(pre) * torch.stack([keep_top(pre[..., i, :], int(k[i]), key=torch.abs)
                                                       for i in range(3)], -2), r"ranks by \|pre\|"),
        (lambda pre, k: (topk_sort(pre, k) > 0).float(), "returns a 0/1 mask"),
        # structure: gradients, the input
        (lambda pre, k: topk_sort(pre.detach(), k), "carries no gradient"),
        (lambda pre, k: topk_sort(pre.detach(), k) + (pre - pre.detach()), "wrong gradient"),
    ],
)
def test_topk_relu_check_rejects(fn, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_topk_relu(fn)
