import pytest
import torch

from plasticity.errors import InvalidConfigError, UnknownNameError
from plasticity.models import ModelSpec, create_model
from plasticity.pruning import measure, prune_model
from plasticity.pruning.criteria import CRITERIA, create_criterion, list_criteria
from plasticity.train import FilterNormHistory, Trainer, accuracy, conv_layers

LENET_CRITERIA = [name for name in CRITERIA.names() if name != "bn-scale"]  # LeNet-5 has no BatchNorm


def sweep_criterion(name: str):
    """The named criterion; hbfp without its optimisation epochs (test_hbfp.py trains them) and the attribution
    criteria on 8 images (test_attribution.py checks their values), so the sweep stays fast."""
    criterion = create_criterion(name)
    if name == "hbfp":
        criterion.optimise_epochs = 0
    if name.startswith("attribution"):
        criterion.max_images = 8
    return criterion


@pytest.mark.parametrize("name", LENET_CRITERIA)
@pytest.mark.parametrize("mode", ["remove", "mask"])
def test_each_criterion_prunes_half_of_every_layer(name, mode, default_base):
    result = prune_model(
        default_base.model, sweep_criterion(name), 0.5, default_base.data, mode=mode, history=default_base.history
    )
    assert result.channels == {"conv1": [10, 20], "conv2": [25, 50]}
    convs = conv_layers(result.model)
    if mode == "remove":
        assert [c.out_channels for c in convs.values()] == [10, 25]
        assert convs["conv2"].in_channels == 10
    else:
        assert [c.out_channels for c in convs.values()] == [20, 50]
        zero_rows = (convs["conv1"].weight.flatten(1).abs().sum(1) == 0).sum()
        assert int(zero_rows) == 10
    acc = accuracy(result.model, default_base.data, default_base.data.test)
    assert 0.1 <= acc <= 1.0


@pytest.mark.parametrize("name", CRITERIA.names())
def test_each_criterion_scores_every_filter_of_a_batchnorm_network(name, mnist):
    model = create_model(ModelSpec("vgg16", 1, 10, 28, width=0.125))
    history = FilterNormHistory(model)  # hbfp pairs filters by their norm history: two points of it, untrained
    history.record(model, 0, 0)
    history.record(model, 1, 1)
    result = prune_model(model, sweep_criterion(name), 0.25, mnist, history=history)
    assert all(kept == original - int(0.25 * original + 0.5) for kept, original in result.channels.values())


def test_l1_removes_exactly_the_smallest_l1_filters(default_base):
    weight = default_base.model.conv2.weight.detach()
    by_hand = weight.flatten(1).abs().sum(1)  # independent reference: the 25 largest norms stay
    expected = sorted(torch.topk(by_hand, 25).indices.tolist())
    result = prune_model(default_base.model, create_criterion("l1"), 0.5, default_base.data)
    assert result.kept["conv2"] == expected
    assert torch.equal(result.model.conv2.weight.detach(), weight[expected][:, result.kept["conv1"]])


def test_random_is_seeded(default_base):
    def kept(seed):
        return prune_model(default_base.model, create_criterion("random", seed), 0.5, default_base.data).kept

    assert kept(0) == kept(0)
    assert kept(0) != kept(1)


def test_the_base_model_is_never_pruned_in_place(default_base):
    before = {k: v.clone() for k, v in default_base.model.state_dict().items()}
    prune_model(default_base.model, create_criterion("taylor"), 0.75, default_base.data)
    prune_model(default_base.model, create_criterion("l1"), 0.5, default_base.data, mode="mask")
    after = default_base.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert default_base.model.conv1.weight.grad is None


def test_mask_gives_the_same_accuracy_as_removal_but_no_fewer_macs(default_base):
    data = default_base.data
    removed = prune_model(default_base.model, create_criterion("l1"), 0.6, data)
    masked = prune_model(default_base.model, create_criterion("l1"), 0.6, data, mode="mask")
    x = data.example_input(64)
    assert torch.allclose(removed.model(x), masked.model(x), atol=1e-4)
    cost_removed, cost_masked, cost_base = (measure(m, data) for m in (removed.model, masked.model, default_base.model))
    assert cost_masked.macs == cost_base.macs and cost_masked.params == cost_base.params
    assert cost_masked.nonzero_params == cost_removed.params
    assert cost_removed.macs < 0.5 * cost_base.macs


def test_masks_survive_optimiser_steps(default_base):
    masked = prune_model(default_base.model, create_criterion("random", 3), 0.5, default_base.data, mode="mask")
    dead = [i for i in range(20) if i not in masked.kept["conv1"]]
    Trainer(masked.model, default_base.data, callbacks=[masked.mask]).fit(1)
    assert float(masked.model.conv1.weight.detach()[dead].abs().sum()) == 0.0
    assert float(masked.model.conv1.weight.detach()[masked.kept["conv1"]].abs().sum()) > 0.0


def test_residual_networks_prune_coupled_layers_together(mnist):
    model = create_model(ModelSpec("resnet20", 1, 10, 28, width=0.5))
    result = prune_model(model, create_criterion("l1"), 0.5, mnist)
    # the first conv and each stage-1 block's second conv feed the same residual sum: one decision
    assert result.kept["conv1"] == result.kept["layer1.0.conv2"] == result.kept["layer1.2.conv2"]
    assert result.model(mnist.example_input(2)).shape == (2, 10)


def test_per_layer_ratios(default_base):
    result = prune_model(
        default_base.model, create_criterion("l1"), 0.5, default_base.data, layer_ratios={"conv1": 0.0, "conv2": 0.9}
    )
    assert result.channels == {"conv1": [20, 20], "conv2": [5, 50]}


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5])
def test_ratio_outside_0_1_is_refused(ratio, default_base):
    with pytest.raises(InvalidConfigError, match=r"\[0, 1\)"):
        prune_model(default_base.model, create_criterion("l1"), ratio, default_base.data)


def test_a_ratio_that_empties_a_layer_is_refused(mnist):
    tiny = create_model(ModelSpec("lenet5", 1, 10, 28, width=0.1))  # conv1 has 2 filters
    with pytest.raises(InvalidConfigError, match="would remove all 2 filters of conv1"):
        prune_model(tiny, create_criterion("l1"), 0.8, mnist)


def test_unknown_layer_and_criterion_names(default_base):
    with pytest.raises(InvalidConfigError, match="prunable layers: conv1, conv2"):
        prune_model(default_base.model, create_criterion("l1"), 0.5, default_base.data, layer_ratios={"fc1": 0.5})
    with pytest.raises(UnknownNameError, match="apoz"):
        create_criterion("apoz2")
    assert {"random", "l1", "l2", "apoz", "mean-activation", "taylor", "bn-scale"} <= set(list_criteria())


def test_bn_scale_on_a_network_without_batchnorm_says_so(default_base):
    with pytest.raises(InvalidConfigError, match="needs a BatchNorm"):
        prune_model(default_base.model, create_criterion("bn-scale"), 0.5, default_base.data)
