#!/usr/bin/env bash
# Random against l1 on a detector and a SegNet, as docs/results.md reports it:
#
#     bash benchmarks/claims_scenes.sh [PAIRS]     # PAIRS: TASK:DATASET (default: the four below)
#
# For each pair: one base (seed 0, 12 epochs), pruned by random and l1 at 25% and 50% of every prunable
# conv layer's filters with pruning seeds 0, 1 and 2 and fine-tuned 3 epochs, beside the control, the base
# trained the same 3 epochs unpruned (`plasticity prune --task ... --json`, one file per run in
# benchmarks/results/scenes/). Then the frames per second of seed 0's runs (a ratio's pruned architecture
# is the same for every seed and criterion) are measured again with nothing else running
# (benchmarks/bench_scenes_fps.py, 5 alternating rounds), with the detectors' backbone share of that time
# (benchmarks/bench_detector_backbone.py), and the table is printed. The shipped examples
# need `pip install --no-deps deepforest stardist`. About 65 minutes on a 2-core CPU (23 of them for
# SegNet on digits-canvas, 23 for the detector on digits-canvas).
set -euo pipefail
cd "$(dirname "$0")/.."
export PLASTICITY_HOME="${PLASTICITY_HOME:-$HOME/.plasticity-scenes}"
out=benchmarks/results/scenes
mkdir -p "$out"
python="${PYTHON:-.venv/bin/python}"
pairs="${*:-detection:deepforest-trees detection:digits-canvas segmentation:stardist-nuclei segmentation:digits-canvas}"

for pair in $pairs; do
  task="${pair%%:*}" dataset="${pair#*:}"
  # l1 at ratio 0 prunes nothing: the control, the base trained for the same 3 more epochs
  for seed in 0 1 2; do for run in l1:0 random:0.25 random:0.5 l1:0.25 l1:0.5; do
    criterion="${run%%:*}" ratio="${run#*:}"
    file="$out/$task-$dataset-$criterion-$ratio-$seed.json"
    [ -s "$file" ] && continue  # done before: the store has it too
    "$python" -m plasticity.cli prune --task "$task" --dataset "$dataset" --criterion "$criterion" \
      --ratio "$ratio" --seed "$seed" --base-seed 0 --json > "$file.partial"
    mv "$file.partial" "$file"
  done; done
done
"$python" benchmarks/bench_scenes_fps.py --rounds 5 --seeds 0 > "$out/fps-cpu-2core.jsonl"
"$python" benchmarks/bench_detector_backbone.py --seeds 0 > "$out/backbone-cpu-2core.jsonl"
"$python" benchmarks/scenes_table.py --fps "$out/fps-cpu-2core.jsonl" "$out"/*.json
