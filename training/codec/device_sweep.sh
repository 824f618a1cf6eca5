#!/usr/bin/env bash
# Fine-tune several rate-distortion points at once on a GPU lease, from a JPEG crop pack.
#
#   python3 training/codec/data.py --pack .device-data/codec/pack.npz      # here, once
#   (copy two checkpoints' weights to .device-data/codec/init-<name>.pt)
#   bash training/codec/device_sweep.sh .device-data/codec "$OUT" 440       # on the GPU machine
#
# Each point is "run_name lambda init-name [overrides...]" (overrides: more train.py flags for
# that point alone, e.g. "q2m40 0.004 q2f --msssim_lmbda 40 --crop 176"). Every run gets the same time budget (the runs
# share the GPU, so each measures its own speed under the others' load); checkpoints are
# copied to OUT every minute, so a lease cut short still returns the latest of each.
# Environment: DEVICE (cuda), BATCH (32), POINTS (the list below), EXTRA (more overrides).
set -u
DIR=${1:?pack folder}
OUT=${2:?output folder}
BUDGET=${3:-440}
DEVICE=${DEVICE:-cuda}
BATCH=${BATCH:-32}
POINTS=${POINTS:-"ls-f8-l0016 0.0016 q1b;ls-f8-l0032 0.0032 q1b;ls-f8-l0075 0.0075 q2;ls-f8-l0130 0.013 q2"}
RUNS=/tmp/latentsight-runs
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$RUNS" "$OUT"
if [ "$DEVICE" = cuda ]; then nvidia-smi -L; fi
python3 -c 'import torch, numpy; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "numpy", numpy.__version__)'

pids=()
names=()
IFS=';' read -ra specs <<<"$POINTS"
for spec in "${specs[@]}"; do
  read -r name lmbda init overrides <<<"$spec"
  names+=("$name")
  rm -rf "${RUNS:?}/$name"
  # The runs stop themselves inside the budget; the timeout (SIGTERM: checkpoint, then exit)
  # only guards against a run that never does.
  timeout -s TERM $((${BUDGET%.*} + 120)) python3 "$HERE/train.py" --run_name "$name" \
    --lmbda "$lmbda" --init_from "$DIR/init-$init.pt" --pool_file "$DIR/pack.npz" \
    --device "$DEVICE" --batch_size "$BATCH" --rot90 --time_budget_s "$BUDGET" \
    --out_dir "$RUNS/$name" --val_interval_s 120 --ckpt_interval_s 60 --log_interval 200 \
    ${EXTRA:-} ${overrides:-} >"$RUNS/$name.out" 2>&1 &
  pids+=($!)
done

collect() {
  for name in "${names[@]}"; do
    if [ -f "$RUNS/$name/ckpt.pt" ]; then cp "$RUNS/$name/ckpt.pt" "$OUT/$name.pt.tmp" && mv "$OUT/$name.pt.tmp" "$OUT/$name.pt"; fi
  done
  tar -C "$RUNS" -czf "$OUT/logs.tgz.tmp" --exclude='*.pt' . 2>/dev/null && mv "$OUT/logs.tgz.tmp" "$OUT/logs.tgz"
}

tick=0
while :; do
  alive=0
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
  [ $alive = 0 ] && break
  sleep 5
  tick=$((tick + 5))
  if [ $((tick % 60)) = 0 ]; then
    collect
    if [ "$DEVICE" = cuda ]; then nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; fi
    for name in "${names[@]}"; do echo "$name: $(grep -h '"step"' "$RUNS/$name.out" | tail -n 1)"; done
  fi
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
collect
for name in "${names[@]}"; do
  echo "== $name"
  grep -h '^{"budget_s\|val_loss\|Error\|error' "$RUNS/$name.out" | tail -n 4
done
exit $status
