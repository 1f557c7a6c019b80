"""The detector and SegNet pruned for real: SegNet's unpooling stays coupled to its encoder, pruned
networks run with the right output structure and are smaller, and a run goes through the store."""

import copy

import numpy as np
import pytest
import torch
from PIL import Image
from scene_folders import mask_folder, voc_folder

from plasticity.errors import InvalidConfigError
from plasticity.pruning.groups import cut_slices, dependency_graph, prunable_groups, pruning_group
from plasticity.store import RunStore
from plasticity.tasks.networks import NETWORKS, NetworkSpec, SegNet, create_network, pretrained_state
from plasticity.tasks.runs import (
    SceneBase,
    ScenePruneConfig,
    SceneTrainConfig,
    get_scene_base,
    prune_network,
    run_scene_prune,
)
from plasticity.tasks.scenes import Picture, build_scenes


def _remove_or_zero(model: SegNet, example: torch.Tensor, remove: bool) -> list[list[str]]:
    """Every third filter of every group of `model` removed, or only zeroed where it is cut."""
    graph = dependency_graph(model, example)
    groups = prunable_groups(model, graph, [model.classifier])
    plan = [pruning_group(graph, group, list(range(1, group.size, 3))) for group in groups]
    for group in plan:
        if remove:
            group.prune()
        else:
            for module, name, dim, index in cut_slices(graph, group):
                getattr(module, name).data.index_fill_(dim, index, 0.0)
    return [[layer.name for layer in group.layers] for group in groups]


def test_segnet_unpooling_is_coupled_to_its_encoder_stage():
    """Removing filters must equal zeroing them: it does only if the conv that feeds an unpooling loses
    the same channels as the encoder stage whose pooling indices it is unpooled with."""
    torch.manual_seed(0)
    model = SegNet(1, 3, widths=(8, 12, 16)).eval()
    example = torch.randn(2, 1, 32, 32)
    removed, zeroed = copy.deepcopy(model), copy.deepcopy(model)
    groups = _remove_or_zero(removed, example, remove=True)
    _remove_or_zero(zeroed, example, remove=False)
    assert sum(p.numel() for p in removed.parameters()) < sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        torch.testing.assert_close(removed(example), zeroed(example), atol=1e-5, rtol=1e-4)
    assert ["encoder.0.1.0", "decoder.1.1.0"] in groups and ["encoder.1.1.0", "decoder.2.1.0"] in groups


def _scenes(size: int = 32, count: int = 6):
    rng = np.random.default_rng(0)
    pictures = []
    for _ in range(count):
        pixels = rng.integers(0, 60, (size, size, 1), dtype=np.uint8)
        mask = np.zeros((size, size), np.int64)
        pixels[4:14, 6:16], mask[4:14, 6:16] = 250, 1
        pictures.append(Picture(pixels, np.array([[6, 4, 16, 14]], np.float32), np.array([1]), mask))
    return build_scenes("squares", pictures, ["square"])


@pytest.mark.parametrize("name,criterion", [("fasterrcnn-tiny", "random"), ("segnet", "l1")])
def test_a_pruned_network_runs_with_the_right_output_structure_and_is_smaller(name, criterion):
    scenes = _scenes()
    network = NETWORKS.get(name)
    config = SceneTrainConfig(task=network.task, network=name, dataset="squares", epochs=0)
    spec = NetworkSpec(name, scenes.channels, 1, scenes.image_size, scenes.mean, scenes.std)
    base = SceneBase(config, create_network(spec).eval(), scenes, {})
    pruned = prune_network(base, criterion, 0.5, seed=0)
    assert sum(p.numel() for p in pruned.model.parameters()) < sum(p.numel() for p in base.model.parameters())
    assert pruned.macs_pruned < pruned.macs_base
    assert all(kept == original // 2 for kept, original in pruned.channels.values())
    with torch.no_grad():
        if network.task == "detection":
            (output,) = pruned.model([scenes.test.images[0].float().expand(3, -1, -1) / 255])
            assert set(output) == {"boxes", "labels", "scores"} and output["boxes"].shape[1:] == (4,)
            # the heads read the backbone's kept outputs: they are the base's, unpruned
            assert pruned.model.backbone.features[-1][0].out_channels == pruned.model.backbone.out_channels == 64
            assert pruned.model.rpn.head.conv[0][0].in_channels == 64
            assert pruned.model.roi_heads.box_head.fc6.in_features == 64 * 7 * 7
        else:
            output = pruned.model(scenes.normalize(scenes.test.images))
            assert output.shape == (len(scenes.test), 2, 32, 32)


def test_the_full_size_mobilenet_detector_prunes_its_body_and_keeps_the_fpn_s_outputs():
    scenes = _scenes(size=64)
    name = "fasterrcnn-mobilenet-v3"
    config = SceneTrainConfig(network=name, dataset="squares", epochs=0)
    base = SceneBase(config, create_network(NetworkSpec(name, 1, 1, 64, scenes.mean, scenes.std)).eval(), scenes, {})
    pruned = prune_network(base, "l1", 0.5, seed=0)
    assert pruned.macs_pruned < 0.5 * pruned.macs_base and len(pruned.channels) > 20
    assert sum(p.numel() for p in pruned.model.parameters()) < sum(p.numel() for p in base.model.parameters())
    fpn = [m.out_channels for m in pruned.model.backbone.fpn.modules() if isinstance(m, torch.nn.Conv2d)]
    assert set(fpn) == {256}  # the RPN and box head read these
    with torch.no_grad():
        (output,) = pruned.model([scenes.test.images[0].float().expand(3, -1, -1) / 255])
    assert set(output) == {"boxes", "labels", "scores"} and output["boxes"].shape[1:] == (4,)


def test_detection_refuses_a_criterion_that_needs_labels():
    with pytest.raises(InvalidConfigError, match="random or a weight-based criterion"):
        ScenePruneConfig(criterion="apoz")
    with pytest.raises(InvalidConfigError, match="not a detection network"):
        SceneTrainConfig(network="segnet")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: SceneTrainConfig(seed=-1), "seed must be"),
        (lambda: SceneTrainConfig(lr=float("nan")), "learning rate must be a finite number"),
        (lambda: ScenePruneConfig(finetune_epochs=-2), "finetune epochs must be"),
        (lambda: ScenePruneConfig(lr=0.0), "learning rate must be in"),
    ],
)
def test_scene_configs_check_seeds_epochs_and_learning_rates_as_classification_does(make, message):
    with pytest.raises(InvalidConfigError, match=message):
        make()


def test_a_segmentation_run_goes_through_the_store_and_is_found_again(tmp_path):
    """A real mask folder (PNG files) -> base -> pruned and fine-tuned run, reported after each phase."""
    folder = tmp_path / "cells"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    rng = np.random.default_rng(1)
    for k in range(4):
        mask = np.zeros((40, 40), np.uint8)
        mask[5 + k : 20 + k, 10:30] = 1
        Image.fromarray((mask * 200 + rng.integers(0, 40, (40, 40))).astype(np.uint8)).save(
            folder / "images" / f"{k}.png"
        )
        Image.fromarray(mask).save(folder / "masks" / f"{k}.png")
    store = RunStore(tmp_path / "home")
    base_config = SceneTrainConfig(task="segmentation", network="segnet", dataset=f"masks:{folder}", epochs=1)
    config = ScenePruneConfig(base_config, "l1", 0.25, seed=0, finetune_epochs=1)
    reports = []
    result = run_scene_prune(config, store, on_progress=reports.append)
    assert [len(r["curve"]) for r in reports] == [0, 1, 1] and reports[0]["fps_base"] is None
    assert 0 <= result["miou_pruned"] <= 1 and result["miou_final"] == result["curve"][-1]["miou"]
    assert result["fps_base"] > 0 and result["fps_pruned"] > 0 and result["params_pruned"] < result["params_base"]
    assert store.done(config.key).result == result
    assert run_scene_prune(config, store) == result  # found, not redone
    assert get_scene_base(base_config, store).result == store.done(base_config.key).result


def test_a_scene_base_starts_from_a_weights_file_whose_head_may_have_other_classes(tmp_path):
    dataset = mask_folder(tmp_path / "cells")
    store = RunStore(tmp_path / "home")
    trained = SegNet(1, 5)  # five classes: its classifier does not fit this two-class set and stays fresh
    for parameter in trained.parameters():
        torch.nn.init.normal_(parameter.data)
    torch.save({"model": trained.state_dict(), "epoch": 7}, tmp_path / "segnet.pth")  # a training checkpoint

    config = SceneTrainConfig(
        task="segmentation", network="segnet", dataset=dataset, epochs=0, weights=str(tmp_path / "segnet.pth")
    )
    assert config.key != SceneTrainConfig(task="segmentation", network="segnet", dataset=dataset, epochs=0).key
    model = get_scene_base(config, store).model
    assert torch.equal(model.encoder[0][0][0].weight, trained.encoder[0][0][0].weight)
    assert torch.equal(model.decoder[0][1][1].running_var, trained.decoder[0][1][1].running_var)
    assert model.classifier.out_channels == 2  # the set's classes, freshly initialised

    torch.save(create_network(NetworkSpec("fasterrcnn-tiny", 1, 1, 32, (0.5,), (0.5,))).state_dict(), tmp_path / "d.pt")
    with pytest.raises(InvalidConfigError, match="another network"):
        get_scene_base(
            SceneTrainConfig(task="segmentation", network="segnet", dataset=dataset, weights=str(tmp_path / "d.pt")),
            store,
        )


def test_the_mobilenet_detector_starts_from_torchvision_s_coco_weights_in_the_hub_cache(tmp_path, monkeypatch):
    """The online path, fed a file in torchvision's format (frozen BatchNorm: no counters) at its cache place."""
    from torchvision.models.detection import FasterRCNN_MobileNet_V3_Large_320_FPN_Weights

    from plasticity.errors import DatasetUnavailableError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    dataset = voc_folder(tmp_path / "squares")
    config = SceneTrainConfig(network="fasterrcnn-mobilenet-v3", dataset=dataset, epochs=0, pretrained=True)
    store = RunStore(tmp_path / "home")
    with pytest.raises(DatasetUnavailableError, match="without --pretrained"):  # offline, nothing cached
        get_scene_base(config, store)

    coco = create_network(NetworkSpec("fasterrcnn-mobilenet-v3", 3, 90, 320, (0.5,) * 3, (0.5,) * 3))
    state = {k: v for k, v in coco.state_dict().items() if not k.endswith("num_batches_tracked")}
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True, exist_ok=True)  # the failed download made it
    path = cache / FasterRCNN_MobileNet_V3_Large_320_FPN_Weights.COCO_V1.url.rsplit("/", 1)[1]
    torch.save(state, path)
    model = get_scene_base(config, store).model
    first = "backbone.body.0.0.weight"
    assert torch.equal(model.state_dict()[first], state[first])
    assert model.roi_heads.box_predictor.cls_score.out_features == 2  # background and the set's one class
    assert model.transform.image_mean == [0.485, 0.456, 0.406]  # normalised as the weights were trained

    with pytest.raises(InvalidConfigError, match="fasterrcnn-mobilenet-v3"):
        SceneTrainConfig(network="fasterrcnn-tiny", pretrained=True)


def test_a_hostile_file_in_the_hub_cache_is_refused_unopened(tmp_path, monkeypatch, hostile_pickle):
    from torchvision.models.detection import FasterRCNN_MobileNet_V3_Large_320_FPN_Weights

    payload, witness = hostile_pickle
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / FasterRCNN_MobileNet_V3_Large_320_FPN_Weights.COCO_V1.url.rsplit("/", 1)[1]).write_bytes(payload)
    with pytest.raises(InvalidConfigError, match="not a readable weights file"):
        pretrained_state("fasterrcnn-mobilenet-v3")
    assert not witness.exists()


def test_a_segnet_s_key_names_its_balanced_loss_and_runs_made_before_keep_theirs():
    balanced = SceneTrainConfig(task="segmentation", network="segnet", dataset="stardist-nuclei")
    assert balanced.balance and balanced.to_dict()["balance"] is True
    before = {k: v for k, v in balanced.to_dict().items() if k != "balance"}  # a stored config of an earlier run
    earlier = SceneTrainConfig.from_dict(before)
    assert not earlier.balance and earlier.to_dict() == before and earlier.key != balanced.key
    assert "balance" not in SceneTrainConfig().to_dict()  # a detector's loss has no class weights: keys unchanged
