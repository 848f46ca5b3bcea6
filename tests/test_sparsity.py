"""Dense-layer sparsity (leanrec.nn.sparsity) against numpy brute force, and magnitude pruning as a method
(leanrec-baselines' magprune): the unpruned companion is the backbone's own run, the pruned model keeps
exactly its share of dense weights, and the harness scores both."""
from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from leanrec.context import Budget
from leanrec.nn.sparsity import dense_weight_stats, hidden_layers, magnitude_prune_, recalibrate_batch_norm_


def net(seed: int, widths: tuple[int, ...]) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for a, b in zip(widths, widths[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1], nn.Embedding(5, 3))   # an embedding is not a dense layer


widths_st = st.lists(st.integers(1, 9), min_size=2, max_size=4).map(tuple)


def _survivors(magnitudes: np.ndarray, keep: float) -> np.ndarray:
    """Brute force: the ceil(keep * n) (at least 1) largest, ties in order."""
    n_keep = max(1, math.ceil(keep * magnitudes.size - 1e-9))
    out = np.zeros(magnitudes.size, dtype=bool)
    out[np.argsort(-magnitudes, kind="stable")[:n_keep]] = True
    return out


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), widths=widths_st, keep=st.floats(0.01, 1.0), rounded=st.booleans(),
       scope=st.sampled_from(["layer", "global"]))
def test_magnitude_pruning_keeps_the_largest_weights(seed, widths, keep, rounded, scope):
    """Per layer: each layer keeps ceil(keep * its size) of its largest weights (none is emptied); global: the
    largest ceil(keep * N) of all. Kept weights are unchanged, the rest zero; biases and embeddings untouched."""
    model = net(seed, widths)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    if rounded:   # ties: weights on a coarse grid, so many share the threshold's magnitude
        with torch.no_grad():
            for m in linears:
                m.weight.copy_(torch.round(m.weight * 4) / 4)
    before = [m.weight.detach().clone().numpy().ravel() for m in linears]
    bias = [m.bias.detach().clone() for m in linears]
    emb = model[-1].weight.detach().clone()
    info = magnitude_prune_(model, keep, scope)

    flat = np.concatenate(before)
    if scope == "global":
        survivors = _survivors(np.abs(flat), keep)
    else:
        survivors = np.concatenate([_survivors(np.abs(w), keep) for w in before])
        assert all(share > 0 for share in info["layer_kept_share"])
    after = np.concatenate([m.weight.detach().numpy().ravel() for m in linears])
    np.testing.assert_array_equal(after, np.where(survivors, flat, 0.0))
    assert info["kept"] == survivors.sum() and info["total"] == flat.size and info["scope"] == scope
    if scope == "global" and 0 < survivors.sum() < flat.size:
        assert np.abs(flat[~survivors]).max() <= np.abs(flat[survivors]).min()
    assert all(torch.equal(m.bias, b) for m, b in zip(linears, bias))   # biases are not pruned
    assert torch.equal(model[-1].weight, emb)                          # nor embeddings


def test_global_pruning_can_empty_a_small_layer_and_per_layer_cannot():
    """The layer-collapse case: a logit head whose weights are all smaller than the hidden layer's."""
    model = nn.Sequential(nn.Linear(20, 20), nn.ReLU(), nn.Linear(20, 1))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[2].weight.fill_(0.01)
    glob = magnitude_prune_(copy.deepcopy(model), 0.1, "global")
    layer = magnitude_prune_(copy.deepcopy(model), 0.1, "layer")
    assert glob["layer_kept_share"][1] == 0.0 and layer["layer_kept_share"] == [0.1, 0.1]
    with pytest.raises(ValueError):
        magnitude_prune_(model, 0.1, "rows")


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), widths=widths_st, scale=st.sampled_from([1e-4, 1e-3, 1e-2, 1.0]))
def test_weight_statistics_match_brute_force(seed, widths, scale):
    model = net(seed, (*widths, 1))   # the last layer is a logit head: not a hidden layer
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                m.weight.mul_(scale)
    hidden = [m.weight.detach().double().numpy() for m in model if isinstance(m, nn.Linear) and m.out_features > 1]
    assert len(hidden_layers(model)) == len(hidden)
    if not hidden:
        with pytest.raises(ValueError):
            dense_weight_stats(model)
        return
    stats = dense_weight_stats(model)
    every = np.concatenate([w.ravel() for w in hidden])
    assert stats["near_zero_share"] == pytest.approx(np.mean(np.abs(every) < 1e-3))
    for w, top, dims in zip(hidden, stats["top_power_share"], stats["dims_for_power"]):
        power = np.sort((w ** 2).sum(axis=0))[::-1]   # per input dimension (column), largest first
        k = max(1, math.ceil(0.04 * power.size))
        assert top == pytest.approx(power[:k].sum() / power.sum())
        # brute force: the fewest dimensions whose power reaches 80% of the total
        need = next(n for n in range(1, power.size + 1) if power[:n].sum() / power.sum() >= 0.8 - 1e-12)
        assert dims == pytest.approx(need / power.size)
    assert stats["top_power_share_first"] == stats["top_power_share"][0]
    assert stats["relative_change"] is None
    moved = net(seed + 1, (*widths, 1))   # other weights of the same shapes
    w1 = [m.weight.detach().double().numpy() for m in moved if isinstance(m, nn.Linear) and m.out_features > 1]
    change = dense_weight_stats(model, init=moved)["relative_change"]
    expect = math.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(hidden, w1)) / sum((b ** 2).sum() for b in w1))
    assert change == pytest.approx(expect)


def test_magprune_serves_the_pruned_backbone_and_the_harness_scores_both(tmp_path):
    """The unpruned companion is the dnn row's own model (same seed, same training), bit for bit."""
    import leanrec
    from leanrec.runner import parse_method, run_grid

    card = str(Path(leanrec.__file__).parent / "datasets" / "synthetic.toml")
    data = {"synthetic": {"n_rows": 2000}}
    specs = ["dnn:hidden=[16,16]", 'magprune:keep=0.2,backbone_config={"hidden":[16,16]}']
    recs = run_grid([card], [parse_method(s) for s in specs], [0], tmp_path, budget=Budget(max_steps=100),
                    data_overrides=data, progress=False)
    dnn, pruned = recs
    assert dnn["status"] == "ok" and pruned["status"] == "ok", pruned.get("error")
    assert pruned["metrics"]["companions"]["unpruned"]["auc"] == dnn["metrics"]["auc"]
    assert pruned["metrics"]["auc"] != dnn["metrics"]["auc"]
    p = pruned["extra"]["pruning"]
    shares = p["layer_kept_share"]   # each of the 3 dense layers keeps ceil(0.2 x its size): [16 x in, 16 x 16, 1 x 16]
    assert len(shares) == 3 and all(0.2 <= x < 0.2 + 1 / 16 for x in shares) and p["keep"] == 0.2
    assert p["recalibrated_bn_layers"] == 2                                      # the DNN's batch norms
    w = pruned["extra"]["dense_weights"]
    assert 0 <= w["near_zero_share"] <= 1 and len(w["top_power_share"]) == 2   # two hidden layers of 16
    assert w["relative_change"] > 0                                              # training moved them
    assert pruned["family"] == "pruning" and set(pruned["stage_times"]) >= {"train", "prune"}


def test_magprune_refuses_a_backbone_without_dense_layers_before_training():
    from leanrec.errors import ConfigError
    from leanrec.plugins import registry
    from leanrec.testing import tiny_dataset

    class NoTraining:   # a context whose train() must never be reached
        device = torch.device("cpu")

        def train(self, *a, **k):
            raise AssertionError("trained before refusing")

    with pytest.raises(ConfigError, match="no dense"):
        registry().method("magprune").from_overrides({"backbone": "fm"}).fit(tiny_dataset(200), NoTraining())


def test_batch_norm_recalibration_is_the_average_of_batch_statistics():
    """After pruning, running statistics = the mean over batches of each batch's mean and unbiased variance
    of the layer's input (numpy), nothing else changes, and the model is left in eval mode."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4, 1))
    model.train()
    X = torch.randn(96, 5)
    model(X)   # stale statistics, as after training
    magnitude_prune_(model, 0.5)
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    assert recalibrate_batch_norm_(model, X, batch_size=32) == 1
    h = model[0](X).detach().numpy().reshape(3, 32, 4)
    bn = model[1]
    np.testing.assert_allclose(bn.running_mean.numpy(), h.mean(axis=1).mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), h.var(axis=1, ddof=1).mean(axis=0), rtol=1e-5, atol=1e-6)
    assert bn.momentum == 0.1 and not model.training
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())
    assert recalibrate_batch_norm_(nn.Sequential(nn.Linear(2, 1)), X[:, :2], 8) == 0   # no batch norm: no-op


def test_magprune_forwards_the_training_keys_set_on_it_and_otherwise_trains_as_the_backbone():
    from leanrec.plugins import registry

    method = registry().method("magprune")
    own = method.from_overrides({"backbone": "reaction-baseline"}).config.build_backbone()
    assert own.config == registry().method("reaction-baseline").from_overrides({}).config   # embedding 16
    fast = method.from_overrides({"lr": 0.01, "embedding_dim": 8}).config.build_backbone()
    assert fast.config.lr == 0.01 and fast.config.embedding_dim == 8
    assert fast.config.hidden == registry().method("dnn").from_overrides({}).config.hidden


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_pruning_and_statistics_on_the_gpu_match_the_cpu():
    cpu = net(3, (6, 5, 4, 1))
    gpu = net(3, (6, 5, 4, 1)).cuda()
    assert magnitude_prune_(gpu, 0.3)["kept"] == magnitude_prune_(cpu, 0.3)["kept"]
    for a, b in zip(cpu.state_dict().values(), gpu.state_dict().values()):
        assert torch.equal(a, b.cpu())
    assert dense_weight_stats(gpu)["near_zero_share"] == dense_weight_stats(cpu)["near_zero_share"]
