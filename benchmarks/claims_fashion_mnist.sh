#!/usr/bin/env bash
# The papers' claims on the full Fashion-MNIST (70,000 images), as docs/results.md reports them:
#
#     bash benchmarks/claims_fashion_mnist.sh [PARTS]     # PARTS: any of compare masks hbfp
#
# compare: random against l1 and taylor at 25/50/75% on ResNet-20 at half width (one base, 4 epochs;
#          3 pruning seeds; BatchNorm recalibrated on 10 batches; 1 fine-tuning epoch);
# masks:   best of N random feature-map masks against one, on LeNet-5 (3 seeds, 1 retraining epoch);
# hbfp:    HBFP's rounds against l1's on LeNet-5 (seed 0).
# Needs Debian's dataset-fashion-mnist (or the IDX files under $PLASTICITY_DATA). Raw JSON goes to
# benchmarks/results/fashion-mnist/; about 80 minutes on a 2-core CPU that other work shared.
set -euo pipefail
cd "$(dirname "$0")/.."
export PLASTICITY_HOME="${PLASTICITY_HOME:-$HOME/.plasticity-fashion-mnist-claims}"
out=benchmarks/results/fashion-mnist
mkdir -p "$out"
python="${PYTHON:-.venv/bin/python}"
parts="${*:-compare masks hbfp}"

for part in $parts; do
  case "$part" in
    compare)
      "$python" -m plasticity.cli compare --model resnet20 --width 0.5 --dataset fashion-mnist --epochs 4 \
        --criteria random,l1,taylor --ratios 0.25,0.5,0.75 --seeds 0,1,2 --base-seed 0 --finetune-epochs 1 \
        --recalibrate-bn 10 --json > "$out/compare-resnet20-width0.5.json"
      ;;
    masks)
      "$python" benchmarks/bench_masks.py --dataset fashion-mnist --granularities feature-map --n-values 1,10 \
        --finetune-epochs 1 --out "$out/masks-lenet5.json"
      ;;
    hbfp)
      "$python" benchmarks/bench_hbfp.py --dataset fashion-mnist --variants hbfp,l1 --seeds 0 \
        --out "$out/hbfp-lenet5.json"
      ;;
    *) echo "unknown part: $part (compare, masks, hbfp)" >&2; exit 2 ;;
  esac
done
