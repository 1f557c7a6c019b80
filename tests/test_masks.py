"""Coarse pruning with random masks: exact sparsity, masks that survive training, best-of-N selection,
feature-map masks against physical removal, and a small run end to end (real data, real models)."""

import copy
import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from plasticity import cli
from plasticity.errors import InvalidConfigError, UnknownNameError
from plasticity.models import ModelSpec, create_model
from plasticity.pruning.masks import (
    GRANULARITIES,
    KeepMasked,
    MaskSearch,
    count_macs,
    layer_images,
    layer_positions,
    physical_copy,
    ranked,
)
from plasticity.runs.masks import MaskConfig, run_masks
from plasticity.train import Trainer, accuracy, conv_layers


def half_up(ratio: float, units: int) -> int:
    return int(ratio * units + 0.5)


@pytest.fixture(scope="module")
def small_train(mnist):
    """mnist-5k with 256 training images: one epoch is four optimiser steps."""
    return replace(mnist, train=mnist.train.subset(torch.arange(256)))


@pytest.mark.parametrize("ratio", [0.3, 0.6])
def test_kernel_masks_remove_exactly_the_ratio_of_whole_kernels(ratio, default_base):
    mask = MaskSearch(default_base.model, default_base.data, "kernel", ratio, seed=3).draw(7)
    for name, conv in conv_layers(default_base.model).items():
        keep = mask.keep[f"{name}.weight"]
        per_kernel = keep.flatten(2).sum(2)
        assert set(per_kernel.unique().tolist()) <= {0, keep.shape[2] * keep.shape[3]}  # all or nothing
        assert int((per_kernel == 0).sum()) == half_up(ratio, conv.out_channels * conv.in_channels)
    removed = sum(half_up(ratio, c.out_channels * c.in_channels) * 25 for c in conv_layers(default_base.model).values())
    assert mask.sparsity(default_base.model) == removed / 25_500


@pytest.mark.parametrize("ratio", [0.3, 0.6])
def test_intra_kernel_masks_prune_one_strided_pattern_shared_by_every_kernel(ratio, default_base):
    search = MaskSearch(default_base.model, default_base.data, "intra-kernel", ratio, seed=1)
    patterns = set()
    for index in range(6):
        mask = search.draw(index)
        for name in ("conv1", "conv2"):
            keep = mask.keep[f"{name}.weight"].flatten(2)
            assert (keep == keep[0, 0]).all()  # the same positions in every kernel of the layer
            pruned = (~keep[0, 0]).nonzero().flatten().tolist()
            assert len(pruned) == half_up(ratio, 25)
            patterns.add(tuple(pruned))
        assert mask.sparsity(default_base.model) == half_up(ratio, 25) / 25
    assert len(patterns) > 6  # random offsets and strides: the masks differ


@pytest.mark.parametrize("ratio", [0.3, 0.6])
def test_feature_map_masks_cut_whole_filters_and_the_inputs_that_read_them(ratio, default_base):
    mask = MaskSearch(default_base.model, default_base.data, "feature-map", ratio, seed=2).draw(0)
    gone1, gone2 = half_up(ratio, 20), half_up(ratio, 50)
    conv2 = mask.keep["conv2.weight"]
    assert int((mask.keep["conv1.weight"].flatten(1).sum(1) == 0).sum()) == gone1
    assert int((conv2.flatten(1).sum(1) == 0).sum()) == gone2
    assert int((conv2.sum((0, 2, 3)) == 0).sum()) == gone1  # conv1's removed outputs are conv2's removed inputs
    assert len(mask.channels["conv1"]) == 20 - gone1 and len(mask.channels["conv2"]) == 50 - gone2
    expected = gone1 * 25 + (25_000 - (50 - gone2) * (20 - gone1) * 25)
    assert mask.sparsity(default_base.model) == expected / 25_500
    assert not mask.keep["conv1.bias"][[i for i in range(20) if i not in mask.channels["conv1"]]].any()


def test_layer_images_tile_the_weights(default_base):
    mask = MaskSearch(default_base.model, default_base.data, "kernel", 0.5).draw(0)
    images = layer_images(mask, default_base.model)
    assert images["conv1"].shape == (5, 100) and images["conv2"].shape == (100, 250)
    keep = mask.keep["conv2.weight"]
    assert images["conv2"][5 * 3 : 5 * 4, 5 * 7 : 5 * 8].equal(keep[7, 3])  # input 3, filter 7


@pytest.mark.parametrize("granularity", GRANULARITIES.names())
def test_masks_survive_optimiser_steps(granularity, default_base, small_train):
    mask = MaskSearch(default_base.model, small_train, granularity, 0.5, seed=4).draw(1)
    model = mask.apply(copy.deepcopy(default_base.model))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    Trainer(model, small_train, lr=0.05, callbacks=[KeepMasked(mask)]).fit(1)
    for name, keep in mask.keep.items():
        param = model.get_parameter(name).detach()
        assert (param[~keep] == 0).all(), f"{name}: masked weights came back"
        assert not torch.equal(param[keep], before[name][keep]), f"{name}: the kept weights did not train"

    if granularity != "feature-map":  # a whole dead channel gets no gradient: there, zero is a fixed point
        unmasked = mask.apply(copy.deepcopy(default_base.model))
        Trainer(unmasked, small_train, lr=0.05).fit(1)  # without the callback they come back: the test can fail
        assert any((unmasked.get_parameter(n).detach()[~k] != 0).any() for n, k in mask.keep.items())


def test_best_of_n_picks_the_argmax_of_independently_scored_masks(default_base):
    search = MaskSearch(default_base.model, default_base.data, "kernel", 0.6, seed=5)
    scores = search.evaluate(8)
    for index, score in enumerate(scores):  # each mask scored alone on a fresh copy: no leak from the last one
        alone = search.draw(index).apply(copy.deepcopy(default_base.model).to(memory_format=torch.channels_last))
        assert accuracy(alone, default_base.data, default_base.data.val) == score
    assert search.evaluate(3) == scores[:3]  # mask i depends only on (seed, i)
    assert len(set(scores)) > 1
    picks = ranked(scores)
    assert picks["best"] == max(range(8), key=lambda i: (scores[i], -i))
    assert picks["worst"] == min(range(8), key=lambda i: (scores[i], i))
    assert ranked([0.5, 0.9, 0.9, 0.1]) == {"best": 1, "median": 0, "worst": 3}  # first on ties
    assert all(torch.equal(a, b) for a, b in zip(default_base.model.parameters(), search.working.parameters()))


def test_run_masks_retrains_the_best_mask_and_reports_sparsity_and_macs(default_base, small_train, store):
    base = replace(default_base, data=small_train)  # the same validation and test splits, a short epoch
    config = MaskConfig(granularity="kernel", ratio=0.6, n_masks=6, finetune_epochs=1, seed=1)
    seen = []
    result = run_masks(config, store, base=base, on_progress=seen.append)
    assert [len(r["val_accs"]) for r in seen[:6]] == [1, 2, 3, 4, 5, 6]  # scores stream in as they come
    assert result["best_index"] == result["retrained_index"] == ranked(result["val_accs"])["best"]
    assert result["best_val_acc"] == max(result["val_accs"])
    assert result["sparsity"] == 0.6 and result["sparsity_per_layer"] == {"conv1": 0.6, "conv2": 0.6}
    assert result["macs_dense"] == result["macs_base"] == 2_293_000  # conv + linear MACs of LeNet-5
    assert result["macs_sparse"] == 2_293_000 - round(0.6 * (288_000 + 1_600_000))
    assert [p["epoch"] for p in result["curve"]] == [1] and 0.5 < result["acc_final"] <= 1
    assert store.get(config.key).status == "done" and store.get(config.key).checkpoint.exists()
    assert run_masks(config, store, base=base) == result  # from the store, not redone
    median = run_masks(replace(config, retrain="median"), store, base=base)
    assert median["val_accs"] == result["val_accs"] and median["retrained_index"] == result["median_index"]


def test_feature_map_masks_match_physical_removal_of_the_same_channels(default_base, small_train):
    data = default_base.data
    mask = MaskSearch(default_base.model, data, "feature-map", 0.5, seed=6).draw(2)
    masked = mask.apply(copy.deepcopy(default_base.model)).eval()
    removed = physical_copy(default_base.model, mask, data.example_input()).eval()
    assert [c.out_channels for c in conv_layers(removed).values()] == [10, 25]
    assert accuracy(masked, data, data.test) == accuracy(removed, data, data.test)
    inputs = data.normalize(data.test.images[:64])
    torch.testing.assert_close(masked(inputs), removed(inputs), atol=1e-4, rtol=1e-4)
    positions = layer_positions(default_base.model, data.example_input())
    assert count_macs(masked, positions, mask) == count_macs(removed, layer_positions(removed, data.example_input()))

    # retraining the mask and retraining the removed network take the same steps
    Trainer(masked, small_train, seed=3, callbacks=[KeepMasked(mask)]).fit(1)
    Trainer(removed, small_train, seed=3).fit(1)
    torch.testing.assert_close(masked.eval()(inputs), removed.eval()(inputs), atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("name", ["vgg16", "resnet20"])
def test_feature_map_masks_match_removal_through_batchnorm_and_residuals(name, mnist):
    torch.manual_seed(0)
    model = create_model(ModelSpec(name, 1, 10, 28, width=0.25)).eval()
    mask = MaskSearch(model, mnist, "feature-map", 0.4, seed=1).draw(0)
    inputs = mnist.normalize(mnist.test.images[:16])
    removed = physical_copy(model, mask, mnist.example_input()).eval()
    torch.testing.assert_close(mask.apply(copy.deepcopy(model))(inputs), removed(inputs), atol=1e-4, rtol=1e-4)


def test_bad_settings_are_clear_errors(default_base):
    with pytest.raises(UnknownNameError, match="known granularities: feature-map, kernel, intra-kernel"):
        MaskConfig(granularity="channel")
    with pytest.raises(InvalidConfigError, match="number of masks"):
        MaskConfig(n_masks=0)
    with pytest.raises(InvalidConfigError, match="best, median, worst"):
        MaskConfig(retrain="luckiest")
    with pytest.raises(InvalidConfigError, match=r"\[0, 1\)"):
        MaskConfig(ratio=1.0)
    with pytest.raises(InvalidConfigError, match="would remove all 20 kernels of conv1"):
        MaskSearch(default_base.model, default_base.data, "kernel", 0.99)
    with pytest.raises(InvalidConfigError, match="no prunable layer 'fc1'"):
        MaskSearch(default_base.model, default_base.data, "kernel", 0.5, layer_ratios={"fc1": 0.5})
    one_by_one = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 1), torch.nn.Flatten(), torch.nn.Linear(4 * 28 * 28, 10))
    with pytest.raises(InvalidConfigError, match="larger than 1x1"):
        MaskSearch(one_by_one, default_base.data, "intra-kernel", 0.5)


def test_per_layer_ratios(default_base):
    mask = MaskSearch(default_base.model, default_base.data, "kernel", 0.2, layer_ratios={"conv2": 0.8}).draw(0)
    assert mask.removed(default_base.model) == {"conv1": (4 * 25, 500), "conv2": (800 * 25, 25_000)}


def test_cli_masks_json_end_to_end(tmp_path):
    command = [sys.executable, "-m", "plasticity.cli", "masks", "--model", "lenet5", "--dataset", "mnist-5k"]
    command += ["--granularity", "intra-kernel", "--ratio", "0.6", "--n-masks", "4", "--finetune-epochs", "1"]
    env = {**os.environ, "PLASTICITY_HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*command, "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    for key in ("granularity", "ratio", "n_masks", "val_accs", "best_val_acc", "median_val_acc"):
        assert key in result
    for key in ("acc_base", "acc_pruned", "acc_final", "sparsity"):
        assert 0 < result[key] <= 1
    assert (result["granularity"], result["ratio"], result["n_masks"]) == ("intra-kernel", 0.6, 4)
    assert len(result["val_accs"]) == 4 and result["sparsity"] == 0.6


def test_cli_masks_errors_are_one_line(capsys, tmp_path):
    assert cli.main(["masks", "--granularity", "channel", "--home", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        "error: unknown granularity 'channel'; known granularities: feature-map, kernel, intra-kernel\n"
    )
    assert cli.main(["masks", "--n-masks", "0", "--home", str(tmp_path)]) == 2
    assert "number of masks" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["masks", "--help"])
    assert "--granularity" in capsys.readouterr().out


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("granularity", GRANULARITIES.names())
def test_masks_on_the_gpu(granularity, tmp_path, default_base):
    from plasticity.runs import TrainConfig, get_base
    from plasticity.store import RunStore

    store = RunStore(tmp_path)
    base = get_base(TrainConfig(), store, "cuda")
    on_cpu = MaskSearch(default_base.model, default_base.data, granularity, 0.5, seed=1).evaluate(4)
    on_gpu = MaskSearch(base.model, base.data, granularity, 0.5, seed=1).evaluate(4)
    assert max(abs(a - b) for a, b in zip(on_cpu, on_gpu)) <= 0.01  # the same masks, other arithmetic
    result = run_masks(MaskConfig(granularity=granularity, ratio=0.5, n_masks=4, finetune_epochs=1), store, "cuda")
    assert result["device"].startswith("cuda") and result["acc_final"] > 0.9
