import math

import pytest
import torch

from plasticity.errors import DivergedError
from plasticity.models import ModelSpec, create_model
from plasticity.pruning.criteria import create_criterion
from plasticity.pruning.prune import prune_model
from plasticity.train import FilterNormHistory, Trainer, seed_everything


def _trained(mnist, epochs=2, seed=0, every_k_steps=None):
    seed_everything(seed)
    model = create_model(ModelSpec("lenet5", 1, 10, 28))
    history = FilterNormHistory(model, every_k_steps=every_k_steps)
    Trainer(model, mnist, seed=seed, callbacks=[history]).fit(epochs)
    return model, history


def test_history_has_one_row_per_epoch_plus_the_start(mnist):
    model, history = _trained(mnist, epochs=2)
    assert history.epochs() == [0, 1, 2]
    l1 = history.matrix("conv2", "l1")
    assert l1.shape == (3, 50)
    by_hand = model.conv2.weight.detach().flatten(1).abs().sum(1)
    assert torch.allclose(l1[-1], by_hand)
    assert torch.allclose(history.matrix("conv1", "l2")[-1], model.conv1.weight.detach().flatten(1).norm(dim=1))
    assert not torch.equal(l1[0], l1[-1])  # the norms moved during training


def test_history_every_k_steps(mnist):
    _, history = _trained(mnist, epochs=1, every_k_steps=20)
    steps_per_epoch = math.ceil(4000 / 64)
    assert len(history.points) == 1 + steps_per_epoch // 20 + 1
    assert history.matrix("conv1", epochs_only=False).shape[0] == len(history.points)
    assert history.epochs() == [0, 1]


def test_training_is_deterministic_on_cpu(mnist):
    a, _ = _trained(mnist, epochs=1, seed=5)
    b, _ = _trained(mnist, epochs=1, seed=5)
    c, _ = _trained(mnist, epochs=1, seed=6)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.conv1.weight, c.conv1.weight)


def test_every_kept_parameter_is_trained(mnist):
    seed_everything(0)
    model = create_model(ModelSpec("lenet5", 1, 10, 28))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    Trainer(model, mnist).fit(1)
    assert all(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_history_stays_aligned_with_original_filter_indices_after_pruning(default_base):
    history = FilterNormHistory.from_state_dict(default_base.history.state_dict())
    pruned = prune_model(default_base.model, create_criterion("random", 7), 0.5, default_base.data)
    history.on_prune(pruned.kept)
    history.continue_from()
    Trainer(pruned.model, default_base.data, callbacks=[history]).fit(1)

    l1 = history.matrix("conv1")
    assert history.epochs() == list(range(13)) + [13]
    kept = pruned.kept["conv1"]
    dropped = [i for i in range(20) if i not in kept]
    assert history.original_index["conv1"] == kept
    assert torch.isnan(l1[-1, dropped]).all() and not torch.isnan(l1[:-1]).any()
    assert torch.allclose(l1[-1, kept], pruned.model.conv1.weight.detach().flatten(1).abs().sum(1))

    # a second pruning composes: positions in the pruned model map back to original indices
    again = prune_model(pruned.model, create_criterion("l1"), 0.5, default_base.data)
    history.on_prune(again.kept)
    assert history.original_index["conv1"] == [kept[p] for p in again.kept["conv1"]]


def test_history_state_dict_round_trip(default_base):
    state = default_base.history.state_dict()
    again = FilterNormHistory.from_state_dict(state)
    assert again.epochs() == default_base.history.epochs()
    assert torch.equal(again.matrix("conv2", "l2"), default_base.history.matrix("conv2", "l2"))


def test_a_diverging_run_raises_a_clear_error(mnist):
    model = create_model(ModelSpec("lenet5", 1, 10, 28))
    with pytest.raises(DivergedError, match="lower the learning rate"):
        Trainer(model, mnist, lr=1e12).fit(1)
