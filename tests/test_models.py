import pytest
import torch
from torch import nn

from plasticity.data import load_dataset
from plasticity.errors import DatasetUnavailableError, InvalidConfigError, UnknownNameError
from plasticity.models import MODELS, ModelSpec, classifier_layer, create_model
from plasticity.pruning.criteria import create_criterion
from plasticity.pruning.prune import prune_model

SHAPES = [(1, 28, 10), (3, 32, 100), (1, 8, 10)]  # MNIST, CIFAR-100, scikit-learn digits


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize("channels,size,classes", SHAPES)
def test_every_model_builds_for_the_data(name, channels, size, classes):
    model = create_model(ModelSpec(name, channels, classes, size, width=0.25))
    out = model(torch.randn(2, channels, size, size))
    assert out.shape == (2, classes) and torch.isfinite(out).all()
    assert classifier_layer(model).out_features == classes


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_prunes_for_real(name, mnist):
    model = create_model(ModelSpec(name, 1, 10, 28, width=0.25))
    result = prune_model(model, create_criterion("l1"), 0.5, mnist)
    before = sum(p.numel() for p in model.parameters())
    after = sum(p.numel() for p in result.model.parameters())
    assert after < 0.6 * before
    assert result.model(mnist.example_input(4)).shape == (4, 10)
    assert all(kept <= original for kept, original in result.channels.values())


def test_unknown_model_names_the_known_ones():
    with pytest.raises(UnknownNameError) as err:
        create_model(ModelSpec("lenet6", 1, 10, 28))
    assert "lenet5" in str(err.value) and "resnet56" in str(err.value)


def test_own_models_have_no_pretrained_weights():
    with pytest.raises(InvalidConfigError, match="torchvision:"):
        create_model(ModelSpec("lenet5", 1, 10, 28, pretrained=True))


def test_torchvision_pretrained_weights_load_from_the_hub_cache(tmp_path, monkeypatch):
    """The online path, fed a weights file in torchvision's own format at its cache location."""
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    reference = torchvision.models.resnet18()
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(reference.state_dict(), cache / weights.url.rsplit("/", 1)[1])

    model = create_model(ModelSpec("torchvision:resnet18", 3, 10, 32, pretrained=True))
    assert torch.equal(model.conv1.weight, reference.conv1.weight)  # the file's weights, not a fresh init
    assert model.fc.out_features == 10
    grey = create_model(ModelSpec("torchvision:resnet18", 1, 10, 28, pretrained=True))
    assert grey(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_torchvision_weights_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(DatasetUnavailableError, match="without --pretrained"):
        create_model(ModelSpec("torchvision:resnet18", 3, 10, 32, pretrained=True))


def test_torchvision_unknown_name():
    with pytest.raises(UnknownNameError, match="resnet18"):
        create_model(ModelSpec("torchvision:resnet19", 3, 10, 32))


def test_lenet5_is_caffes_layout():
    model = create_model(ModelSpec("lenet5", 1, 10, 28))
    shapes = [tuple(m.weight.shape) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert shapes == [(20, 1, 5, 5), (50, 20, 5, 5), (500, 800), (10, 500)]


def test_digits_dataset_trains_lenet(tmp_path):
    digits = load_dataset("digits")
    model = create_model(ModelSpec("lenet5", digits.channels, digits.num_classes, digits.image_size))
    assert model(digits.example_input(3)).shape == (3, 10)


def test_a_hostile_file_in_the_hub_cache_is_refused_before_torchvision_unpickles_it(
    tmp_path, monkeypatch, hostile_pickle
):
    """torchvision reads its weights with the full unpickler; plasticity reads a cached file safely first."""
    import torchvision

    payload, witness = hostile_pickle
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / torchvision.models.ResNet18_Weights.DEFAULT.url.rsplit("/", 1)[1]).write_bytes(payload)
    with pytest.raises(InvalidConfigError, match="not a readable weights file"):
        create_model(ModelSpec("torchvision:resnet18", 3, 10, 32, pretrained=True))
    assert not witness.exists()
