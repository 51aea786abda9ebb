"""The motif detector, its hand-built examples, the mechanism trace and neuron ablation."""

import math

import pytest
import torch

from utils import motif as motif_module
from utils.models import NeuronComputationModel
from utils.motif import (
    Motif,
    MotifThresholds,
    ablate_neurons,
    detect_motif,
    find_motifs,
    hand_built_motif,
    hand_built_pairs,
    instances_with_motif,
    leak_and_inhibition,
    loss_on,
    model_with_weights,
    single_feature_batch,
    strongest_motif_per_instance,
    trace_motif,
)


def motif_weights():
    W1, W2, _ = hand_built_motif()
    return W1.clone(), W2.clone()


def test_hand_built_motif_is_found_exactly_once_with_its_numbers():
    W1, W2 = motif_weights()
    assert detect_motif(W1, W2).nonzero().tolist() == [[0, 0, 0, 1]]
    leak, inhibition = leak_and_inhibition(W1, W2)
    assert leak[0, 0, 0, 1] == pytest.approx(2.0 * 2.0)  # W2[j, n] |W1[n, i]|
    assert inhibition[0, 0, 0, 1] == pytest.approx(1.0 * 5.0)  # neuron 1: ReLU(+1 · 1) · ReLU(5)
    assert find_motifs(W1, W2) == [
        Motif(instance=0, neuron=0, i=0, j=1, sign=1, inhibitors=(1,), leak=4.0, inhibition=5.0)
    ]


def test_leak_and_inhibition_by_hand_for_a_negative_drive():
    # neuron 0 is driven by x_0 < 0; neuron 1 fires for x_0 < 0 (W1 = -3) and writes output 1 with -2;
    # neuron 2 fires for x_0 > 0 and must not count
    W1 = torch.tensor([[[-2.0, 0.3], [-3.0, 0.0], [4.0, 0.0]]])  # (1, 3, 2)
    W2 = torch.tensor([[[0.5, 0.0, 0.0], [1.5, -2.0, -7.0]]])  # (1, 2, 3)
    leak, inhibition = leak_and_inhibition(W1, W2)
    assert leak.shape == inhibition.shape == (1, 3, 2, 2)
    assert leak[0, 0, 0, 1] == pytest.approx(1.5 * 2.0)
    assert inhibition[0, 0, 0, 1] == pytest.approx(3.0 * 2.0)
    assert inhibition[0, 2, 0, 1] == pytest.approx(4.0 * 7.0)  # neuron 2 is driven by x_0 > 0
    assert detect_motif(W1, W2).nonzero().tolist() == [[0, 0, 0, 1]]
    assert find_motifs(W1, W2)[0].sign == -1 and find_motifs(W1, W2)[0].inhibitors == (1,)


def test_plain_pairs_and_broken_motifs_are_not_flagged():
    assert not detect_motif(*hand_built_pairs()[:2]).any()
    W1, W2 = motif_weights()
    no_inhibitor = W2.clone()
    no_inhibitor[0, 1, 1] = 0.0
    assert not detect_motif(W1, no_inhibitor).any()
    wrong_sign = W1.clone()
    wrong_sign[0, 1, 0] = -1.0  # the would-be inhibitor fires for x_0 < 0, when neuron 0 is silent
    assert not detect_motif(wrong_sign, W2).any()
    symmetric_W1, symmetric_W2 = W1.clone(), W2.clone()
    symmetric_W1[0, 0, :2] = torch.tensor([1.0, -1.0])
    symmetric_W2[0, :2, 0] = 1.0
    assert not detect_motif(symmetric_W1, symmetric_W2).any()
    unflipped = W2.clone()
    unflipped[0, :2, 0] = torch.tensor([2.0, 0.5])  # loud in and loud out for the same feature
    assert not detect_motif(W1, unflipped).any()


def test_hand_built_variants_change_few_weights_and_are_not_flagged_in_either_form():
    W1, W2 = motif_weights()
    variants = motif_module.hand_built_variants()
    assert list(variants) == ["no inhibitor", "wrong-sign inhibitor", "unflipped read-out", "symmetric shared neuron"]
    changed = {name: int((V1 != W1).sum() + (V2 != W2).sum()) for name, (V1, V2) in variants.items()}
    assert changed == {
        "no inhibitor": 1,
        "wrong-sign inhibitor": 1,
        "unflipped read-out": 2,
        "symmetric shared neuron": 4,
    }
    for name, (V1, V2) in variants.items():
        assert not detect_motif(V1, V2).any(), name
        assert not detect_motif(V1, V2, form="product").any(), name
    assert torch.equal(hand_built_motif()[0], W1)  # the originals are untouched


def test_hand_built_near_misses_each_fail_one_condition_and_the_product_form_flags_two():
    t = MotifThresholds()
    near_misses = motif_module.hand_built_near_misses()
    failing = {}
    for name, (V1, V2) in near_misses.items():
        loud, out = V1[0, 0, :2].abs(), V2[0, :2, 0]  # neuron 0's weights on features (i, j) = (0, 1)
        leak, inhibition = leak_and_inhibition(V1, V2)
        conditions = {
            "reads": bool((loud > t.reads).all()),
            "writes": bool((out > t.writes).all()),
            "storage": bool(loud[0] >= t.ratio * loud[1]),
            "read-out": bool(out[1] >= t.ratio * out[0]),
            "cancel": bool(inhibition[0, 0, 0, 1] >= t.cancel * leak[0, 0, 0, 1]),
        }
        failing[name] = [c for c, holds in conditions.items() if not holds]
        assert not detect_motif(V1, V2, t).any(), name
    assert failing == {
        "quiet input below reads": ["reads"],
        "quiet read-out below writes": ["writes"],
        "storage not lopsided": ["storage"],
        "read-out not flipped": ["read-out"],
    }
    flagged_by_product = {name: detect_motif(V1, V2, t, form="product").nonzero().tolist()
                          for name, (V1, V2) in near_misses.items()}
    assert flagged_by_product == {
        "quiet input below reads": [],
        "quiet read-out below writes": [],
        "storage not lopsided": [[0, 0, 0, 1]],
        "read-out not flipped": [[0, 0, 0, 1]],
    }


def test_thresholds_are_inclusive_bounds_and_each_one_matters():
    W1, W2 = motif_weights()
    assert detect_motif(W1, W2, MotifThresholds(ratio=4.0)).any()  # 2 / 0.5 = 4 exactly
    assert not detect_motif(W1, W2, MotifThresholds(ratio=4.01)).any()
    assert not detect_motif(W1, W2, MotifThresholds(reads=0.5)).any()  # |W1[0, 1]| = 0.5 is not above 0.5
    assert not detect_motif(W1, W2, MotifThresholds(writes=0.5)).any()
    assert detect_motif(W1, W2, MotifThresholds(cancel=1.25)).any()  # 5 >= 1.25 · 4
    assert not detect_motif(W1, W2, MotifThresholds(cancel=1.3)).any()


def test_batched_detection_matches_instance_by_instance():
    g = torch.Generator().manual_seed(0)
    W1 = torch.randn(40, 5, 6, generator=g) * (torch.rand(40, 5, 6, generator=g) < 0.5)
    W2 = torch.randn(40, 6, 5, generator=g) * (torch.rand(40, 6, 5, generator=g) < 0.5)
    together = detect_motif(W1, W2)
    assert together.any() and not together.all()
    for k in range(40):
        assert torch.equal(detect_motif(W1[k : k + 1], W2[k : k + 1])[0], together[k])
    assert torch.equal(instances_with_motif(W1, W2), together.flatten(1).any(1))
    strongest = strongest_motif_per_instance(find_motifs(W1, W2))
    assert [m.instance for m in strongest] == instances_with_motif(W1, W2).nonzero().flatten().tolist()
    for motif in strongest:
        assert motif.leak == max(m.leak for m in find_motifs(W1, W2) if m.instance == motif.instance)


def test_bad_weights_and_thresholds_raise():
    W1, W2 = motif_weights()
    with pytest.raises(ValueError, match=r"W1 must be a tensor of shape \(inst, d_hidden, feats\)"):
        detect_motif(W1[0], W2)
    with pytest.raises(ValueError, match=r"W2 must have shape \(inst, feats, d_hidden\) = \(1, 3, 4\)"):
        detect_motif(W1, W2.transpose(1, 2))
    with pytest.raises(ValueError, match="ratio must be a number above 1"):
        MotifThresholds(ratio=1.0)
    with pytest.raises(ValueError, match="reads must be a positive number"):
        MotifThresholds(reads=-0.1)


def hand_model():
    return model_with_weights(*hand_built_motif(), feature_probability=0.3)


def test_trace_of_the_hand_built_motif():
    model = hand_model()
    trace = trace_motif(model, find_motifs(model.W1, model.W2)[0])
    assert list(trace.index) == ["i alone", "j alone", "both"]
    i_alone, j_alone, both = (trace.loc[name] for name in trace.index)
    # i alone, x_0 = 1: neuron 0 gives 2, the inhibitor 1; output 1 gets 2·2 - 5·1 = -1, clipped to 0
    assert (i_alone.h_n, i_alone.h_inhibitors) == (2.0, 1.0)
    assert (i_alone["j from n"], i_alone["j from inhibitors"], i_alone.pre_j, i_alone.out_j) == (4.0, -5.0, -1.0, 0.0)
    assert i_alone.out_i == 1.0 == i_alone.target_i
    # j alone, x_1 = -1: neuron 0 gives 1/2; output 1 gets 2 · 1/2 = 1, output 0 leaks 1/2 · 1/2
    assert (j_alone.x_j, j_alone.h_n, j_alone.out_j, j_alone.out_i) == (-1.0, 0.5, 1.0, 0.25)
    # both: the inhibitor now also cancels the wanted output 1
    assert (both.h_n, both.pre_j, both.out_j, both.target_j) == (2.5, 0.0, 0.0, 1.0)


def test_ablation_removes_the_neuron_in_a_copy_and_brings_the_leak_back():
    model = hand_model()
    before = model.W1.detach().clone(), model.W2.detach().clone()
    mask = torch.tensor([[False, True, False, False]])
    ablated = ablate_neurons(model, mask)
    assert torch.equal(model.W1.detach(), before[0]) and torch.equal(model.W2.detach(), before[1])
    assert (ablated.W1[0, 1] == 0).all() and (ablated.W2[0, :, 1] == 0).all()
    assert torch.equal(ablated.W1[0, [0, 2, 3]], before[0][0, [0, 2, 3]])
    x = torch.tensor([[[1.0, 0.0, 0.0]]])
    assert ablated(x)[0, 0, 1].item() == pytest.approx(4.0)  # the uncancelled leak
    assert model(x)[0, 0, 1].item() == 0.0
    with pytest.raises(ValueError, match=r"mask must be a bool tensor of shape \(inst, d_hidden\) = \(1, 4\)"):
        ablate_neurons(model, torch.tensor([[0, 1, 0, 0]]))


def test_single_feature_batches_and_the_loss_on_them():
    model = hand_model()
    g = torch.Generator().manual_seed(0)
    x = single_feature_batch(model, torch.tensor([0]), 4000, g)
    assert x.shape == (4000, 1, 3)
    assert (x[..., 1:] == 0).all() and x[..., 0].min() >= -1 and x[..., 0].max() <= 1
    assert x[..., 0].mean().abs() < 0.05 and (x[..., 0] > 0).float().mean() == pytest.approx(0.5, abs=0.05)
    # only x_0 active: the hand-built model is exact (outputs |x_0| and 0, 0)
    assert loss_on(model, x).item() == pytest.approx(0.0, abs=1e-12)
    # without the inhibitor, x_0 > 0 leaks 4 x_0 into output 1: loss = mean over feats of 16 x² on half the inputs
    ablated = ablate_neurons(model, torch.tensor([[False, True, False, False]]))
    expected = (16 * x[..., 0].clamp_min(0) ** 2).mean() / 3
    assert loss_on(ablated, x).item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match=r"features must be a long tensor of shape \(inst,\)"):
        single_feature_batch(model, torch.tensor([0.0]), 10)
    with pytest.raises(ValueError, match=r"features must lie in \[0, 3\)"):
        single_feature_batch(model, torch.tensor([3]), 10)


def test_model_with_weights_copies_and_checks():
    W1, W2, b = hand_built_motif()
    model = model_with_weights(W1, W2, b, feature_probability=0.3)
    assert isinstance(model, NeuronComputationModel)
    model.W1.data.zero_()
    assert W1.abs().sum() > 0
    with pytest.raises(ValueError, match=r"b_final must have shape \(inst, feats\) = \(1, 3\)"):
        model_with_weights(W1, W2, torch.zeros(3))


def test_wilson_interval_matches_published_values():
    low, high = motif_module.wilson_interval(torch.tensor([0, 5, 10]), torch.tensor([10, 10, 10]))
    assert low.tolist() == pytest.approx([0.0, 0.2366, 0.7225], abs=1e-4)
    assert high.tolist() == pytest.approx([0.2775, 0.7634, 1.0], abs=1e-4)
    with pytest.raises(ValueError, match="0 <= successes <= trials"):
        motif_module.wilson_interval(torch.tensor([3]), torch.tensor([2]))


def test_frequency_table_counts_each_group():
    has = torch.tensor([True, False, True, True, False, False])
    p = torch.tensor([0.1, 0.1, 0.2, 0.2, 0.1, 0.2])
    decay = torch.tensor([0.7, 0.7, 0.7, 0.7, 0.8, 0.8])
    table = motif_module.frequency_table(has, p=p, decay=decay)
    assert table["p"].tolist() == pytest.approx([0.1, 0.1, 0.2, 0.2])
    assert table["decay"].tolist() == pytest.approx([0.7, 0.8, 0.7, 0.8])
    assert table["instances"].tolist() == [2, 1, 2, 1]
    assert table["with motif"].tolist() == [1, 0, 2, 0]
    assert table["frequency"].tolist() == [0.5, 0.0, 1.0, 0.0]
    assert ((table["low"] <= table["frequency"]) & (table["frequency"] <= table["high"])).all()
    assert motif_module.frequency_table(has, p=p)["with motif"].tolist() == [1, 2]
    with pytest.raises(ValueError, match="has_motif must be a bool tensor"):
        motif_module.frequency_table(has.float(), p=p)
    with pytest.raises(ValueError, match=r"label p must be a tensor of shape \(inst,\) = \(6,\)"):
        motif_module.frequency_table(has, p=p[:3])
    with pytest.raises(ValueError, match="at least one label"):
        motif_module.frequency_table(has)


def test_the_product_form_asks_only_for_the_leak_ratio():
    W1, W2 = motif_weights()
    # the hand-built neuron: ratios 4 and 4, leak ratio 16
    assert detect_motif(W1, W2, form="product").nonzero().tolist() == [[0, 0, 0, 1]]
    assert detect_motif(W1, W2, MotifThresholds(ratio=4.0), form="product").any()  # 16 >= 4²
    assert not detect_motif(W1, W2, MotifThresholds(ratio=4.01), form="product").any()
    # storage ratio 3, read-out ratio 1.5: the product 4.5 passes r² = 4, "each" does not (1.5 < 2)
    lopsided_W1, lopsided_W2 = W1.clone(), W2.clone()
    lopsided_W1[0, 0, :2] = torch.tensor([1.5, -0.5])
    lopsided_W2[0, :2, 0] = torch.tensor([0.4, 0.6])
    assert lopsided_W1[0, 0, 0] / -lopsided_W1[0, 0, 1] * lopsided_W2[0, 1, 0] / lopsided_W2[0, 0, 0] == pytest.approx(
        4.5
    )
    assert detect_motif(lopsided_W1, lopsided_W2, form="product").nonzero().tolist() == [[0, 0, 0, 1]]
    assert not detect_motif(lopsided_W1, lopsided_W2, form="each").any()
    # not flipped at all (feature 0 read out louder too), yet a leak ratio of 8 / 0.8 = 10
    unflipped_W1, unflipped_W2 = W1.clone(), W2.clone()
    unflipped_W1[0, 0, :2] = torch.tensor([4.0, -0.25])
    unflipped_W2[0, :2, 0] = torch.tensor([0.25, 0.2])
    assert detect_motif(unflipped_W1, unflipped_W2, form="product").any()
    assert not detect_motif(unflipped_W1, unflipped_W2, form="each").any()
    assert torch.equal(instances_with_motif(lopsided_W1, lopsided_W2, form="product"), torch.tensor([True]))
    assert find_motifs(lopsided_W1, lopsided_W2, form="product")[0].inhibitors == (1,)
    with pytest.raises(ValueError, match=r"form must be one of \('each', 'product'\), got 'sum'"):
        detect_motif(W1, W2, form="sum")


def test_pre_activation_alone_counts_the_bias_and_every_neuron():
    W1, W2, b = hand_built_motif()
    alone = motif_module.pre_activation_alone(W1, W2, b)
    assert alone.shape == (1, 4, 3, 3)
    # x_0 = +1 alone (neuron 0 reads x_0 > 0): output 1 gets 2·2 from neuron 0 and -5 from neuron 1
    assert alone[0, 0, 0, 1] == pytest.approx(-1.0)
    # neuron 2 reads x_0 with a negative weight: x_0 = -1 alone fires only neuron 2, which writes output 0
    assert alone[0, 2, 0, 1] == pytest.approx(0.0) and alone[0, 2, 0, 0] == pytest.approx(1.0)
    b = torch.tensor([[0.0, 0.3, 0.0]])
    assert motif_module.pre_activation_alone(W1, W2, b)[0, 0, 0, 1] == pytest.approx(-0.7)
    with pytest.raises(ValueError, match=r"b_final must have shape \(inst, feats\) = \(1, 3\)"):
        motif_module.pre_activation_alone(W1, W2, b[0])


def test_shared_pairs_sorts_pairs_by_kind():
    W1, W2, b = hand_built_motif()
    pairs = motif_module.shared_pairs(W1, W2, b)
    # only neuron 0 reads and writes two features: (0, 1) is the motif's order, (1, 0) the reverse
    assert pairs[["neuron", "i", "j", "kind"]].values.tolist() == [[0, 0, 1, "asymmetric"], [0, 1, 0, "reverse"]]
    first = pairs.iloc[0]
    assert (first["input ratio"], first["output ratio"], first["leak"], first["inhibition"]) == (4.0, 4.0, 4.0, 5.0)
    assert first["pre_j alone"] == pytest.approx(-1.0)
    assert pairs.iloc[1]["leak"] == pytest.approx(0.25) and pairs.iloc[1]["inhibition"] == 0.0
    symmetric_W1, symmetric_W2 = W1.clone(), W2.clone()
    symmetric_W1[0, 0, :2] = torch.tensor([1.0, -1.5])
    symmetric_W2[0, :2, 0] = torch.tensor([1.0, 0.8])
    assert motif_module.shared_pairs(symmetric_W1, symmetric_W2, b)["kind"].tolist() == ["near-symmetric"] * 2
    unflipped = W2.clone()
    unflipped[0, :2, 0] = torch.tensor([2.0, 0.5])
    assert motif_module.shared_pairs(W1, unflipped, b)["kind"].tolist() == ["other", "other"]


def test_cut_output_weights_and_per_output_loss():
    model = hand_model()
    mask = torch.zeros(1, 3, 4, dtype=torch.bool)
    mask[0, 1, 1] = True  # the inhibitor's path into output 1 only
    cut = motif_module.cut_output_weights(model, mask)
    assert cut.W2[0, 1, 1] == 0 and model.W2[0, 1, 1] == -5.0
    assert torch.equal(cut.W1, model.W1) and torch.equal(cut.W2[~mask], model.W2[~mask])
    x = single_feature_batch(model, torch.tensor([0]), 2000, torch.Generator().manual_seed(0))
    per_output = motif_module.per_output_loss(cut, x)
    assert per_output.shape == (1, 3)
    assert per_output.sum(1).item() == pytest.approx(loss_on(cut, x).item(), rel=1e-6)
    # output 1 leaks 4 x_0 for x_0 > 0; output 0 is still exact (the inhibitor still writes nothing else)
    assert per_output[0, 0].item() == 0.0 and per_output[0, 1].item() == pytest.approx(
        (16 * x[..., 0].clamp_min(0) ** 2).mean().item() / 3
    )
    with pytest.raises(
        ValueError, match=r"mask must be a bool tensor of shape \(inst, feats, d_hidden\) = \(1, 3, 4\)"
    ):
        motif_module.cut_output_weights(model, mask[0])


def motif_with_a_control():
    """The hand-built motif with a fifth neuron, ReLU(x_0) again, that writes output 2 with -1 (a pull-down
    that cancels nothing), and an inhibitor that also helps compute output 0 (as trained inhibitors do)."""
    W1, W2, b = hand_built_motif()
    W1 = torch.cat([W1, torch.tensor([[[1.0, 0.0, 0.0]]])], dim=1)  # (1, 5, 3)
    W2 = torch.cat([W2, torch.tensor([[[0.0], [0.0], [-1.0]]])], dim=2)  # (1, 3, 5)
    W2[0, 0, 0], W2[0, 0, 1] = 0.25, 0.5  # output 0 with x_0 = 1: 0.25 · 2 + 0.5 · 1 = 1
    return model_with_weights(W1, W2, b, feature_probability=0.3)


def test_control_paths_are_the_strongest_other_pull_downs():
    model = motif_with_a_control()
    (found,) = find_motifs(model.W1, model.W2)
    assert (found.neuron, found.i, found.j, found.inhibitors) == (0, 0, 1, (1,))
    assert motif_module.control_paths(model.W1, model.W2, found) == [(2, 4)]
    with torch.no_grad():
        model.W2[0, 2, 3] = -3.0  # neuron 3 reads x_1, not x_0: it does not fire with the motif's x_i
    assert motif_module.control_paths(model.W1, model.W2, found) == [(2, 4)]
    with torch.no_grad():
        model.W2[0, 2, 1] = -2.0  # the inhibitor itself pulls output 2 down harder than neuron 4 does
    assert motif_module.control_paths(model.W1, model.W2, found) == [(2, 1)]
    W1, W2, _ = hand_built_motif()
    assert motif_module.control_paths(W1, W2, find_motifs(W1, W2)[0]) is None  # nothing else pulls down


def test_path_ablation_study_on_a_hand_built_motif():
    model = motif_with_a_control()
    found = find_motifs(model.W1, model.W2)
    results = motif_module.path_ablation_study(model, found, batch_size=40_000, seed=1)
    (row,) = results.to_dict("records")
    assert (row["instance"], row["neuron"], row["i"], row["j"], row["inhibitors"]) == (0, 0, 0, 1, 1)
    assert (row["leak"], row["strength cut"], row["control strength"]) == (4.0, 5.0, 1.0)
    assert row["loss intact"] == pytest.approx(0.0, abs=1e-12) and row["j loss intact"] == pytest.approx(0.0, abs=1e-12)
    # paths cut: x_0 > 0 leaks 4 x_0 into output 1: E[16 ReLU(x)²] / 3 features = 16 / 6 / 3
    assert row["loss, paths cut"] == pytest.approx(16 / 18, rel=0.03)
    assert row["j loss, paths cut"] == pytest.approx(row["loss, paths cut"])
    # the control's pull-down on output 2 cancels nothing: cutting it costs nothing
    assert row["loss, control"] == pytest.approx(0.0, abs=1e-12)
    # removing the inhibitor neuron also loses its 0.5 x_0 in output 0: E[0.25 ReLU(x)²] / 3 more
    assert row["loss, neurons removed"] == pytest.approx((16 + 0.25) / 18, rel=0.03)
    assert row["share on i"] == pytest.approx(0.25 / 16.25, rel=0.03) and row["share on j"] == pytest.approx(
        16 / 16.25, rel=0.01
    )
    plain = hand_model()
    (plain_row,) = motif_module.path_ablation_study(plain, find_motifs(plain.W1, plain.W2), batch_size=256).to_dict(
        "records"
    )
    assert math.isnan(plain_row["loss, control"]) and math.isnan(plain_row["control strength"])
    with pytest.raises(ValueError, match="at most one motif per instance"):
        motif_module.path_ablation_study(model, found * 2)


def test_linear_output_model_has_no_output_relu_and_trains_with_autograd():
    model = motif_module.LinearOutputModel(hand_model().cfg, feature_probability=0.3, seed=0)
    with torch.no_grad():
        model.W1.copy_(hand_built_motif()[0])
        model.W2.copy_(hand_built_motif()[1])
    x = torch.tensor([[[1.0, 0.0, 0.0]]])
    assert model(x)[0, 0, 1].item() == pytest.approx(-1.0)  # 4 - 5, not clipped
    assert model.step_gradients is None
    before = model.W1.detach().clone()
    model.optimize(steps=3, batch_size=8, progress=False)
    assert not torch.equal(model.W1.detach(), before)
