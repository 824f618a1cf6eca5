#!/usr/bin/env bash
# End-to-end smoke run of the task pipeline on a few images, in a throw-away cache (~25 min on one
# shared core): latents (ONNX codec; a checkpoint too when CODEC_CKPT is set), every classifier and
# segmenter for a few steps, every export checked against onnxruntime, pack/unpack round trip.
#
#   nice -n 19 bash training/tasks/smoke.sh [CACHE] [CODEC_ID]      # defaults /tmp/ls-smoke ls-f8-q2
#   CODEC_CKPT=/tmp/codec-ckpt.pt nice -n 19 bash training/tasks/smoke.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE=${1:-/tmp/ls-smoke}
CODEC=${2:-ls-f8-q2}
T=training/tasks
rm -rf "$CACHE/tasks" "$CACHE/models" "$CACHE/pack" "$CACHE/unpacked"   # only what this script writes
mkdir -p "$CACHE"

python3 $T/latents.py --cache-dir "$CACHE" --codec-onnx "models/$CODEC" --limit-per-class 20 --camvid-limit 12
if [ -n "${CODEC_CKPT:-}" ]; then
  python3 $T/latents.py --cache-dir "$CACHE" --codec-ckpt "$CODEC_CKPT" --codec-id "$CODEC-ckpt" \
    --steps latents,decoded --datasets camvid
fi

COMMON="--cache_dir $CACHE --codec_id $CODEC --log_interval 10"
python3 $T/classify.py --input latent $COMMON --max_steps 50 --eval_interval 25
for input in rgb-cheap rgb decoded; do
  python3 $T/classify.py --input $input $COMMON --max_steps 10 --val_limit 100
done
python3 $T/segment.py --input latent $COMMON --steps 50 --eval_interval 25
for input in decoded rgb; do
  python3 $T/segment.py --input $input $COMMON --steps 10
done

RUNS=$CACHE/tasks/runs
for run in cls-latent-$CODEC cls-rgb-cheap cls-rgb cls-decoded-$CODEC seg-latent-$CODEC seg-decoded-$CODEC seg-rgb; do
  python3 $T/export.py --ckpt "$RUNS/$run/best.pt" --id "$run" --version 0.0.0-smoke \
    --out "$CACHE/models" --cache-dir "$CACHE" > "$CACHE/export-$run.json"
  python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['report']; print(sys.argv[2], r['macs'], r['torch_vs_onnxruntime'])" \
    "$CACHE/export-$run.json" "$run"
done

python3 $T/pack.py --cache-dir "$CACHE" --codec-id "$CODEC" --out "$CACHE/pack"
python3 $T/pack.py --unpack "$CACHE/pack/$CODEC" --cache-dir "$CACHE/unpacked"
echo "smoke run complete: $CACHE"
