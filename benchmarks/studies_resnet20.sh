#!/usr/bin/env bash
# The layer-sensitivity, MACs-budget, schedule and BatchNorm-recalibration studies on ResNet-20 (and the
# recalibration on VGG-16 at a quarter width), on scikit-learn's 8x8 digits, as docs/results.md reports them.
#
#     bash benchmarks/studies_resnet20.sh [PARTS]     # PARTS: any of sensitivity budget schedules batchnorm
#
# Raw JSON goes to benchmarks/results/resnet20/; the runs are kept in $PLASTICITY_HOME (default: a
# folder of its own, so the bases are trained once for all parts). Every BatchNorm network is
# recalibrated on 10 training batches right after each cut (--recalibrate-bn 10): without it a pruned
# ResNet-20 answers at chance, whatever the criterion (the batchnorm part shows this).
set -euo pipefail
cd "$(dirname "$0")/.."
export PLASTICITY_HOME="${PLASTICITY_HOME:-$HOME/.plasticity-resnet20-studies}"
out=benchmarks/results/resnet20
mkdir -p "$out"
plasticity="${PLASTICITY:-.venv/bin/plasticity}"
common=(--model resnet20 --dataset digits --json)
parts="${*:-sensitivity batchnorm schedules budget}"

for part in $parts; do
  case "$part" in
    sensitivity)
      "$plasticity" sensitivity "${common[@]}" --criterion l1 --no-random --ratios 0.25,0.5,0.75,0.9 \
        --recalibrate-bn 10 > "$out/sensitivity-l1.json"
      "$plasticity" sensitivity "${common[@]}" --criterion random --seeds 0,1,2 --ratios 0.25,0.5,0.75,0.9 \
        --recalibrate-bn 10 > "$out/sensitivity-random.json"
      ;;
    budget)
      "$plasticity" budget "${common[@]}" --criterion l1 --targets 0.7,0.5,0.3 --ratios 0.25,0.5,0.75,0.9 \
        --seeds 0,1,2 --finetune-epochs 3 --recalibrate-bn 10 > "$out/budget-l1.json"
      ;;
    schedules)
      for schedule in one-shot iterative:3 agp:3; do
        "$plasticity" compare "${common[@]}" --criteria l1,random --ratios 0.5,0.75,0.9 --seeds 0,1,2 \
          --finetune-epochs 6 --recalibrate-bn 10 --schedule "$schedule" > "$out/schedule-${schedule/:/-}.json"
      done
      ;;
    batchnorm)
      "$plasticity" compare "${common[@]}" --criteria l1,random --ratios 0.25,0.5 --seeds 0,1,2 --base-seed 0 \
        --finetune-epochs 0 --recalibrate-bn 10 > "$out/batchnorm.json"
      "$plasticity" compare --model vgg16 --width 0.25 --dataset digits --json --criteria l1,random \
        --ratios 0.25,0.5 --seeds 0,1,2 --base-seed 0 --finetune-epochs 0 --recalibrate-bn 10 \
        > "$out/batchnorm-vgg16-width0.25.json"
      ;;
    *) echo "unknown part: $part (sensitivity, budget, schedules, batchnorm)" >&2; exit 2 ;;
  esac
done
