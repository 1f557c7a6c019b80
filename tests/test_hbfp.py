"""History-based filter pruning: pair distances and selection, the regulariser, the criterion, the rounds."""

import copy
import json
import math

import pytest
import torch

from plasticity import cli
from plasticity.checkpoint import load_checkpoint
from plasticity.errors import InvalidConfigError, UnknownNameError
from plasticity.models import ModelSpec, create_model
from plasticity.pruning.criteria import HBFP, create_criterion
from plasticity.pruning.pairs import (
    DEFAULT_STRENGTH,
    Pair,
    PairRegulariser,
    drop_one_of_each,
    find_pairs,
    pair_distances,
    select_pairs,
)
from plasticity.pruning.prune import prune_model
from plasticity.runs import TrainConfig, get_base
from plasticity.runs.hbfp import HbfpConfig, filters_per_round, run_hbfp, stored_rounds, within_threshold
from plasticity.store import RunStore
from plasticity.train import FilterNormHistory, Trainer, conv_layers, seed_everything

DIGITS_BASE = TrainConfig(dataset="digits", epochs=3)


@pytest.fixture(scope="module")
def digits_base(tmp_path_factory):
    """LeNet-5 trained 3 epochs on the 8x8 digits with its history: a real base in a fraction of a second."""
    return get_base(DIGITS_BASE, RunStore(tmp_path_factory.mktemp("digits-home")))


def history_of(columns: dict[str, list[list[float]]], original_index: dict[str, list[int]] | None = None):
    """A FilterNormHistory from hand-made (epochs x filters) l1 matrices."""
    l1 = {layer: torch.tensor(rows, dtype=torch.float32) for layer, rows in columns.items()}
    epochs = next(iter(l1.values())).shape[0]
    return FilterNormHistory.from_state_dict(
        {
            "every_k_steps": 0,
            "points": [[e, e * 10] for e in range(epochs)],
            "at_epoch_end": [True] * epochs,
            "width": {layer: m.shape[1] for layer, m in l1.items()},
            "original_index": original_index or {layer: list(range(m.shape[1])) for layer, m in l1.items()},
            "l1": l1,
            "l2": {layer: m.clone() for layer, m in l1.items()},
        }
    )


def test_pair_distances_match_a_double_loop():
    matrix = torch.rand(7, 9, generator=torch.Generator().manual_seed(0)) * 5
    matrix[4:, 2] = math.nan  # filter 2 was pruned after epoch 3
    distances = pair_distances(matrix)
    for i in range(9):
        for j in range(9):
            if i == j or 2 in (i, j):
                assert distances[i, j] == math.inf
            else:
                expected = sum(abs(float(matrix[e, i]) - float(matrix[e, j])) for e in range(7))
                assert distances[i, j].item() == pytest.approx(expected, rel=1e-9)


def test_pair_selection_on_hand_made_histories_is_greedy_and_disjoint():
    # per-epoch norms: f0 and f1 differ by 1 each epoch, f1 and f2 by 1.5, f0 and f2 by 2.5, f3 is far away
    rows = [[1.0, 2.0, 3.5, 20.0], [2.0, 3.0, 4.5, 30.0]]
    distances = pair_distances(torch.tensor(rows))
    assert distances[0, 1] == 2.0 and distances[1, 2] == 3.0 and distances[0, 2] == 5.0
    # the closest pair (0, 1) is taken first; 1 is then used, so 2 pairs with the far 3, not with 1
    assert select_pairs(distances, 2) == [(0, 1, 2.0), (2, 3, pytest.approx(42.0))]
    assert select_pairs(distances, 1) == [(0, 1, 2.0)]
    with pytest.raises(InvalidConfigError, match="at most half"):
        select_pairs(distances, 3)


def test_find_pairs_uses_only_surviving_filters_and_names_them_by_original_index():
    nan = math.nan
    rows = [[1.0, 5.0, 1.1, 9.0, 5.2, 1.05], [2.0, 6.0, 2.1, nan, 6.2, nan], [3.0, 7.0, 3.1, nan, 7.2, nan]]
    history = history_of({"conv": rows}, {"conv": [0, 1, 2, 4]})  # 3 and 5 were pruned
    pairs = find_pairs(history, {"conv": 2})
    assert [(p.a, p.b) for p in pairs] == [(0, 2), (1, 4)]
    assert pairs[0].distance == pytest.approx(0.3) and pairs[1].distance == pytest.approx(0.6)
    with pytest.raises(InvalidConfigError, match="at most half of the 4 filters of conv"):
        find_pairs(history, {"conv": 3})


def test_pairs_on_the_shipped_history_are_disjoint_and_closest_first(default_base):
    counts = {"conv1": 10, "conv2": 25}  # every filter in a pair
    pairs = find_pairs(default_base.history, counts)
    for layer, k in counts.items():
        ours = [p for p in pairs if p.layer == layer]
        members = [f for p in ours for f in (p.a, p.b)]
        assert len(ours) == k and len(set(members)) == 2 * k
        assert [p.distance for p in ours][0] == min(p.distance for p in ours)
        first = ours[0]
        matrix = default_base.history.matrix(layer)
        assert first.distance == pytest.approx(float((matrix[:, first.a] - matrix[:, first.b]).abs().sum()), rel=1e-5)


def test_the_regulariser_has_a_gradient_and_closes_a_pairs_gap():
    seed_everything(0)
    model = create_model(ModelSpec("lenet5", 1, 10, 28))
    original = {name: list(range(conv.out_channels)) for name, conv in conv_layers(model).items()}
    pairs = [Pair("conv2", 3, 7, 0.0), Pair("conv1", 0, 5, 0.0)]
    regulariser = PairRegulariser(pairs, original, strength=1.0)
    assert [p.layer for p in regulariser.pairs] == ["conv2", "conv1"]
    gap_before = regulariser.pair_gaps(model).detach().clone()
    regulariser.penalty(model).backward()
    grad = model.conv2.weight.grad.flatten(1)
    assert grad[[3, 7]].abs().sum(1).gt(0).all()  # both filters of the pair are pulled
    others = [i for i in range(50) if i not in (3, 7)]
    assert grad[others].abs().sum() == 0  # nothing else is
    assert model.conv1.weight.grad.flatten(1)[[0, 5]].abs().sum(1).gt(0).all()

    optimizer = torch.optim.SGD(model.parameters(), lr=1e-5)  # small: each step moves a gap by 2 x lr x weights
    for _ in range(20):
        optimizer.zero_grad()
        regulariser.penalty(model).backward()
        optimizer.step()
    gap_after = regulariser.pair_gaps(model).detach()
    assert (gap_after < gap_before).all()


def test_training_with_the_regulariser_draws_pairs_together(digits_base):
    """Through Trainer's loss_penalty hook: one epoch from a trained base, with and without it."""
    pairs = find_pairs(digits_base.history, {"conv1": 5, "conv2": 12})
    gaps = {}
    for strength in (0.0, DEFAULT_STRENGTH):
        model = copy.deepcopy(digits_base.model)
        regulariser = PairRegulariser(pairs, digits_base.history.original_index, strength)
        Trainer(model, digits_base.data, seed=0, callbacks=[regulariser]).fit(1)
        assert len(regulariser.gaps) == 2  # at the start and after the epoch
        gaps[strength] = sum(regulariser.gaps[-1])
    assert gaps[DEFAULT_STRENGTH] < 0.5 * gaps[0.0]


def test_drop_rules():
    model = create_model(ModelSpec("lenet5", 1, 10, 28))
    with torch.no_grad():
        model.conv1.weight.zero_()
        model.conv1.weight[0] = 1.0  # l1 25
        model.conv1.weight[1] = 2.0  # l1 50
    rows = [[9.0, 1.0] + [0.0] * 18, [9.0, 1.0] + [0.0] * 18]  # filter 0 had the larger norms all along
    history = history_of({"conv1": rows})
    pair = Pair("conv1", 0, 1, 16.0)
    assert drop_one_of_each([pair], model, history, "lower-importance") == [0]
    assert drop_one_of_each([pair], model, history, "larger-cumulative") == [0]
    with torch.no_grad():
        model.conv1.weight[0] = 3.0
    assert drop_one_of_each([pair], model, history, "lower-importance") == [1]
    with pytest.raises(InvalidConfigError, match="unknown drop rule"):
        drop_one_of_each([pair], model, history, "largest")


@pytest.mark.parametrize(("drop", "epochs"), [("lower-importance", 1), ("larger-cumulative", 0)])
def test_the_criterion_prunes_exactly_one_filter_of_each_pair(default_base, drop, epochs):
    before = {k: v.clone() for k, v in default_base.model.state_dict().items()}
    criterion = HBFP(0, optimise_epochs=epochs, drop=drop)
    pruned = prune_model(default_base.model, criterion, 0.3, default_base.data, history=default_base.history)
    assert all(torch.equal(before[k], v) for k, v in default_base.model.state_dict().items())  # base untouched
    assert pruned.channels == {"conv1": [14, 20], "conv2": [35, 50]}
    assert len(criterion.pairs) == 6 + 15 == len(criterion.dropped)
    for layer, width in (("conv1", 20), ("conv2", 50)):
        gone = set(range(width)) - set(pruned.kept[layer])
        ours = [(p, d) for p, d in zip(criterion.pairs, criterion.dropped) if p.layer == layer]
        assert gone == {d for _, d in ours}
        assert all(d in (p.a, p.b) for p, d in ours)  # one of each pair, and the other stays
    assert len(criterion.gaps) == 1 + epochs
    assert epochs == 0 or sum(criterion.gaps[-1]) < sum(criterion.gaps[0])


def test_the_criterion_needs_a_history_and_at_most_half_a_layer(default_base):
    with pytest.raises(InvalidConfigError, match="needs the filter-norm history"):
        prune_model(default_base.model, create_criterion("hbfp"), 0.3, default_base.data)
    with pytest.raises(InvalidConfigError, match="at most half"):
        prune_model(default_base.model, create_criterion("hbfp"), 0.6, default_base.data, history=default_base.history)
    empty = FilterNormHistory(default_base.model)
    with pytest.raises(InvalidConfigError, match="recorded epochs"):
        prune_model(default_base.model, create_criterion("hbfp"), 0.3, default_base.data, history=empty)


def test_stop_rule_and_round_sizes():
    assert within_threshold(0.96, 0.97, 0.01)  # exactly one point below the best: kept
    assert not within_threshold(0.955, 0.97, 0.01)
    assert within_threshold(0.99, 0.97, 0.0)
    assert filters_per_round(50, 50, 0.1) == 5
    assert filters_per_round(20, 3, 0.1) == 1  # capped: three filters make one pair
    assert filters_per_round(20, 1, 0.1) == 0
    assert filters_per_round(20, 20, 0.01) == 1  # at least one a round
    with pytest.raises(InvalidConfigError, match="ratio per round"):
        HbfpConfig(round_ratio=0.6)
    with pytest.raises(UnknownNameError, match="unknown criterion"):
        HbfpConfig(criterion="nope")


def test_rounds_end_to_end_with_aligned_histories(store, digits_base):
    config = HbfpConfig(DIGITS_BASE, round_ratio=0.25, optimise_epochs=1, retrain_epochs=1, max_rounds=2, threshold=1.0)
    seen = []
    result = run_hbfp(config, store, base=digits_base, on_round=seen.append)
    assert [r["round"] for r in result["rounds"]] == [1, 2] == [r["round"] for r in seen]
    assert result["final_round"] == 2 and "last round allowed" in result["stop_reason"]
    assert result["channels"] == {"conv1": [10, 20], "conv2": [24, 50]}  # 5 and 13 (a quarter) a round
    assert result["macs_pruned"] < result["macs_base"] and result["params_pruned"] < result["params_base"]
    for key in ("acc_base", "acc_final", "macs_base", "macs_pruned", "params_base", "params_pruned"):
        assert key in result

    alive = {"conv1": set(range(20)), "conv2": set(range(50))}
    for row in result["rounds"]:
        assert [s["step"] for s in row["steps"]] == [
            "before optimisation",
            "after optimisation",
            "after pruning",
            "after retraining",
        ]
        assert row["steps"][1]["macs"] == row["steps"][0]["macs"] > row["steps"][2]["macs"] == row["macs"]
        for layer in alive:
            dropped = {p["dropped"] for p in row["pairs"] if p["layer"] == layer}
            assert dropped == set(row["pruned"][layer])  # one filter of each pair, nothing else
            assert all({p["a"], p["b"]} <= alive[layer] for p in row["pairs"] if p["layer"] == layer)
            alive[layer] -= dropped
        assert row["gap_curve"][-1] < row["gap_curve"][0]

        run = store.get(config.round_key(row["round"]))
        checkpoint = load_checkpoint(run.checkpoint)
        model, history = checkpoint.build_model(), store.history(run.key)
        assert history.epochs()[-1] == 3 + 2 * row["round"]  # base epochs, then 1 + 1 a round
        assert len(history.points) == len(history.epochs()) + row["round"]  # and a point right after each pruning
        assert not history.at_epoch_end[row["steps"][2]["point"] - 1]
        for layer, conv in conv_layers(model).items():
            assert history.original_index[layer] == sorted(alive[layer])
            last = history.matrix(layer)[-1]
            assert torch.allclose(last[history.original_index[layer]], conv.weight.detach().flatten(1).abs().sum(1))
            assert torch.isnan(last[sorted(set(range(history.width[layer])) - alive[layer])]).all()
    assert stored_rounds(config, store) == [{"key": config.round_key(i + 1), **r} for i, r in enumerate(seen)]
    assert run_hbfp(config, store) == result  # done: from the store


def test_the_stop_rule_keeps_the_last_round_within_the_threshold(store, digits_base):
    """Random halving with no retraining loses accuracy at once: that round is not kept."""
    config = HbfpConfig(
        DIGITS_BASE, "random", round_ratio=0.5, optimise_epochs=0, retrain_epochs=0, threshold=0.0, max_rounds=5
    )
    result = run_hbfp(config, store, base=digits_base)
    rows = result["rounds"]
    assert not rows[-1]["within_threshold"] and all(r["within_threshold"] for r in rows[:-1])
    assert result["final_round"] == len(rows) - 1
    assert "below the best" in result["stop_reason"]
    kept = rows[-2] if len(rows) > 1 else None
    assert result["acc_final"] == (kept["acc_final"] if kept else result["acc_base"])
    assert result["macs_pruned"] == (kept["macs"] if kept else result["macs_base"])


def test_l1_goes_through_the_same_rounds_on_the_same_budget(store, digits_base):
    base = digits_base
    common = {"round_ratio": 0.25, "optimise_epochs": 1, "retrain_epochs": 1, "max_rounds": 1, "threshold": 1.0}
    hbfp = run_hbfp(HbfpConfig(DIGITS_BASE, **common), store, base=base)["rounds"][0]
    l1 = run_hbfp(HbfpConfig(DIGITS_BASE, "l1", **common), store, base=base)["rounds"][0]
    assert hbfp["channels"] == l1["channels"]
    assert [s["epoch"] for s in hbfp["steps"]] == [s["epoch"] for s in l1["steps"]] == [3, 4, 4, 5]
    assert l1["pairs"] == [] and len(hbfp["pairs"]) == 5 + 13


def test_cli_hbfp_json_and_hbfp_as_a_prune_criterion(tmp_path, capsys):
    home = str(tmp_path / "home")
    small = ["--dataset", "digits", "--epochs", "3", "--device", "cpu", "--home", home, "--json"]
    rounds = ["--round-ratio", "0.25", "--optimise-epochs", "1", "--retrain-epochs", "1", "--max-rounds", "1"]
    assert cli.main(["hbfp", *small, *rounds]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["round"] for r in result["rounds"]] == [1]
    assert result["macs_pruned"] < result["macs_base"] and 0 < result["acc_final"] <= 1

    assert cli.main(["prune", *small, "--criterion", "hbfp", "--ratio", "0.3", "--finetune-epochs", "1"]) == 0
    pruned = json.loads(capsys.readouterr().out)
    assert pruned["criterion"] == "hbfp" and pruned["channels"] == {"conv1": [14, 20], "conv2": [35, 50]}

    assert cli.main(["prune", *small, "--criterion", "hbfp", "--ratio", "0.75"]) == 2
    assert "at most half" in capsys.readouterr().err
    assert cli.main(["hbfp", *small, "--round-ratio", "0.7"]) == 2
    assert "ratio per round" in capsys.readouterr().err
