"""The attribution criteria and the attribution page's library, on the shipped LeNet-5 and real mnist-5k."""

import copy

import pytest
import torch

from plasticity.attribution import channel_attribution, filter_maps, input_attribution, list_input_methods
from plasticity.data import Split
from plasticity.errors import InvalidConfigError
from plasticity.inspection import black_image, gallery, layer_maps, rank_filters, where_they_look
from plasticity.pruning.criteria import Attribution, Layer, create_criterion
from plasticity.pruning.prune import prune_model

METHODS = ["attribution", "attribution:conductance", "attribution:ablation"]
FEW = 16  # validation images per test: enough to rank filters, few enough for the path methods


def layers_of(model) -> list[Layer]:
    return [Layer("conv1", model.conv1), Layer("conv2", model.conv2)]


def importance(name: str, model, data, split=None, **options) -> dict[str, torch.Tensor]:
    criterion = create_criterion(name) if not options else type(create_criterion(name))(**options)
    criterion.max_images = FEW
    criterion.accumulate(model, layers_of(model), data, data.val if split is None else split)
    return {layer.name: criterion(layer) for layer in layers_of(model)}


@pytest.mark.parametrize("name", METHODS)
def test_one_importance_per_filter_and_the_same_for_the_same_batch(name, default_base, mnist):
    first = importance(name, default_base.model, mnist)
    again = importance(name, default_base.model, mnist)
    for layer, width in (("conv1", 20), ("conv2", 50)):
        assert first[layer].shape == (width,)
        assert torch.isfinite(first[layer]).all() and (first[layer] >= 0).all() and first[layer].sum() > 0
        assert torch.equal(first[layer], again[layer])


@pytest.mark.parametrize("name", METHODS)
def test_a_filter_zeroed_by_hand_gets_zero_attribution(name, default_base, mnist):
    model = copy.deepcopy(default_base.model)
    with torch.no_grad():
        model.conv2.weight[7] = 0.0
        model.conv2.bias[7] = 0.0
    scores = importance(name, model, mnist)["conv2"]
    # zero up to rounding: ablation subtracts two forward passes, whose sums a thread team may order
    # differently (6.7e-07 seen at 2 threads); every live filter scores far above that
    tiny = 1e-5 * float(scores.max())
    assert abs(float(scores[7])) <= tiny
    assert (scores[torch.arange(50) != 7] > tiny).all()


def test_gradient_x_activation_and_ablation_match_a_computation_by_hand(default_base, mnist):
    model = default_base.model.eval()
    images, labels = mnist.normalize(mnist.val.images[:16]), mnist.val.labels[:16]
    black = mnist.normalize(torch.zeros_like(mnist.val.images[:16]))

    kept = {}
    handle = model.conv2.register_forward_hook(lambda m, i, output: kept.update(act=output))
    scores = model(images).gather(1, labels[:, None]).sum()
    handle.remove()
    (grad,) = torch.autograd.grad(scores, kept["act"])
    by_hand = (kept["act"] * grad).sum((2, 3)).detach()
    ours = channel_attribution(model, model.conv2, images, labels, "gradient-x-activation", black)
    assert torch.allclose(ours, by_hand, rtol=1e-4, atol=1e-5)

    with torch.no_grad():
        full = model(images).gather(1, labels[:, None])[:, 0]
        drops = []
        for channel in range(50):
            zero = model.conv2.register_forward_hook(
                lambda m, i, out, c=channel: out.index_fill(1, torch.tensor([c]), 0)
            )
            drops.append(full - model(images).gather(1, labels[:, None])[:, 0])
            zero.remove()
    ablation = channel_attribution(model, model.conv2, images, labels, "ablation", black)
    assert torch.allclose(ablation, torch.stack(drops, 1), rtol=1e-4, atol=1e-5)


def test_pruning_measures_attribution_on_the_validation_split(default_base, mnist):
    ranked = rank_filters(default_base, "attribution", 0.5)
    criterion = create_criterion("attribution")
    criterion.accumulate(default_base.model, layers_of(default_base.model), mnist, mnist.val)
    assert criterion.split == "val" and create_criterion("l1").split == "train"
    assert torch.allclose(ranked.scores["conv2"], criterion(Layer("conv2", default_base.model.conv2)))
    lowest = set(torch.argsort(ranked.scores["conv2"], stable=True)[:25].tolist())
    assert set(ranked.pruned["conv2"]) == lowest and len(ranked.pruned["conv1"]) == 10
    assert ranked.model.conv2.out_channels == 25 and ranked.order("conv2")[0] not in lowest


def test_a_class_subset_attributes_to_those_classes_only(default_base, mnist):
    threes = mnist.val.subset(mnist.val.labels == 3)
    subset = importance("attribution", default_base.model, mnist, classes=[3])
    by_hand = importance("attribution", default_base.model, mnist, split=Split(threes.images, threes.labels))
    every_class = importance("attribution", default_base.model, mnist)
    assert torch.equal(subset["conv2"], by_hand["conv2"])
    assert not torch.equal(subset["conv2"], every_class["conv2"])
    with pytest.raises(InvalidConfigError, match="no class 12"):
        importance("attribution", default_base.model, mnist, classes=[3, 12])
    assert Attribution(classes=[5, 3, 5]).classes == (3, 5)


def test_pruning_for_a_class_subset_attributes_to_it_either_way(default_base, mnist):
    """`plasticity prune --classes` hands prune_model the subset's data; the library option gives the same."""
    on_subset = prune_model(default_base.model, create_criterion("attribution"), 0.5, mnist.subset([3, 5, 8]))
    with_option = prune_model(default_base.model, Attribution(classes=[3, 5, 8]), 0.5, mnist)
    every_class = prune_model(default_base.model, create_criterion("attribution"), 0.5, mnist)
    assert on_subset.kept == with_option.kept != every_class.kept


def test_filter_maps_input_attribution_and_where_the_networks_look(default_base, mnist):
    maps = layer_maps(default_base.model, mnist, 76, "conv1", "gradient-x-activation")
    assert maps.activation.shape == maps.attribution.shape == (20, 24, 24) and maps.target == 1
    assert (maps.activation >= 0).all()
    with pytest.raises(InvalidConfigError, match="not a map"):
        filter_maps(default_base.model, "conv1", mnist.example_input(), 0, black_image(mnist), "ablation")
    with pytest.raises(InvalidConfigError, match="no conv layer 'fc1'"):
        layer_maps(default_base.model, mnist, 0, "fc1", "gradient-x-activation")
    with pytest.raises(InvalidConfigError, match="no test image 750"):
        layer_maps(default_base.model, mnist, 750, "conv1", "gradient-x-activation")

    image = mnist.example_input()
    for method in list_input_methods():
        attribution = input_attribution(default_base.model, image, mnist.test.labels[:1], method, black_image(mnist))
        assert attribution.shape == (1, 28, 28) and attribution.abs().sum() > 0

    pruned = rank_filters(default_base, "l1", 0.75).model
    looks = where_they_look({"base": default_base.model, "pruned": pruned}, mnist, 76, "saliency")
    assert [look.name for look in looks] == ["base", "pruned"]
    assert looks[0].similarity == pytest.approx(1.0) and -1.0 <= looks[1].similarity < 1.0
    assert looks[0].predicted == 1 and 0.0 < looks[1].confidence <= 1.0
    assert [int(mnist.test.labels[i]) for i in gallery(mnist, per_class=1)] == list(range(10))
