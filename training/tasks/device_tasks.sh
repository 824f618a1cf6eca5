#!/usr/bin/env bash
# Train every task model and its baselines in one GPU lease, from the data folders as files.
#
#   python3 training/tasks/pack.py --files imagenette,camvid --codec-id files --max-mb 40   # here
#   one device call per .device-data/files/files-K.tar (carry it; the machine stays warm and
#   keeps what earlier calls brought), then, in the last call:
#   bash training/tasks/device_tasks.sh .device-data/files "$OUT"
#
# There: the tars are unpacked, the source arrays built (latents.py), then each codec's latents
# (and CamVid's decoded pixels) computed from the shipped ONNX graphs run in PyTorch on the GPU
# (latents.py --device cuda, checked against onnxruntime on real images first). Every model
# trains at once on the one GPU, each with the same recipe as the others of its task; a model
# starts as soon as its inputs exist. Every minute, and at the end, OUT receives the best
# checkpoint of each run (weights narrowed to fp16 to fit the return limits: export.py ships
# fp16 weights anyway, and checks them), its result.json and training log, and every log.
#
# Environment: DEVICE (cuda), CODECS ("ls-f8-q2 ls-f8-q1"), EPOCHS (16), SEG_STEPS (4000),
# SEG_BATCH (8), SUFFIX (-gpu: run names cls-latent-ls-f8-q2-gpu, ...), DEADLINE_S (540: runs
# still going then are stopped, checkpointed and collected), LIMIT (smoke: images per class
# and CamVid images per split), MAX_STEPS (smoke: classifier and segmenter steps),
# DATASETS (imagenette,camvid; trials may need one), VARIANTS
# (architecture trials instead of the full set: "name cls|seg overrides...;..." trains only those
# latent models, on every codec of CODECS, e.g. "b422 cls --blocks 4,2,2;w192 seg --width 192";
# "name@ls-f8-q2 ..." trains that variant on that codec only; @SEG_TEACHER@ in a variant's
# overrides stands for the codec's seg-decoded-* baseline's logits, which teacher.py computes there
# from models/baselines/ and the codec's decoded CamVid pixels before the variant starts, e.g.
# "kd seg --latent_stem synthesis --synth_skip 32 --blocks 4 --teacher @SEG_TEACHER@").
# DECODED=1 with VARIANTS: each codec's seg-decoded baseline trains too, on its decoded CamVid
# pixels (a codec whose transforms changed needs its latent models and that baseline anew).
set -u
FILES=${1:?folder of files-K.tar and index.json}
OUT=${2:?output folder}
DEVICE=${DEVICE:-cuda}
CODECS=${CODECS:-"ls-f8-q2 ls-f8-q1"}
EPOCHS=${EPOCHS:-16}
SEG_STEPS=${SEG_STEPS:-4000}
SEG_BATCH=${SEG_BATCH:-8}
SUFFIX=${SUFFIX:--gpu}
DEADLINE_S=${DEADLINE_S:-540}
LIMIT=${LIMIT:-0}
DATASETS=${DATASETS:-imagenette,camvid}
MAX_STEPS=${MAX_STEPS:-0}
WORK=${WORK:-/tmp/ls-device}
DATA=$WORK/data
CACHE=$WORK/cache
RUNS=$CACHE/tasks/runs
LOGS=$WORK/logs
T=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$T/../.." && pwd)
START=$(date +%s)
mkdir -p "$DATA" "$CACHE" "$RUNS" "$LOGS" "$OUT"
export PYTHONUNBUFFERED=1
if [ "$DEVICE" = cuda ]; then nvidia-smi -L; fi
python3 -c 'import torch, numpy, onnx, onnxruntime; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "onnxruntime", onnxruntime.__version__)'

elapsed() { echo $(($(date +%s) - START)); }
log() { echo "[$(elapsed) s] $*"; }

pids=()
names=()
launch() {   # name command...: runs in the background, output to LOGS/name.out
  local name=$1
  shift
  "$@" >"$LOGS/$name.out" 2>&1 &
  pids+=($!)
  names+=("$name")
  log "started $name"
}

collect() {
  python3 - "$RUNS" "$LOGS" "$OUT" "$CACHE" <<'PY'
import glob, io, json, os, sys, tarfile
import torch
runs, logs, out, cache = sys.argv[1:]
files, budget = [], 15 * 2 ** 20           # each returned file at most 16 MiB
for d in sorted(glob.glob(os.path.join(runs, "*"))):
    best = os.path.join(d, "best.pt")
    if not os.path.exists(best):
        continue
    ckpt = torch.load(best, map_location="cpu", weights_only=False)
    ckpt["model"] = {k: v.half() if v.is_floating_point() else v for k, v in ckpt["model"].items()}
    ckpt["returned_as"] = "fp16 weights (device_tasks.sh)"
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    members = [(f"{os.path.basename(d)}/best.pt", buf.getvalue())]
    for extra in ("result.json", "train.log.jsonl"):
        p = os.path.join(d, extra)
        if os.path.exists(p):
            members.append((f"{os.path.basename(d)}/{extra}", open(p, "rb").read()))
    files.append((sum(len(b) for _, b in members), members))
bins = []                                 # first fit, largest first
for size, members in sorted(files, key=lambda f: -f[0]):
    for b in bins:
        if b[0] + size <= budget:
            b[0] += size
            b[1].extend(members)
            break
    else:
        bins.append([size, list(members)])
def write_tar(path, members, gz=False):
    with tarfile.open(path + ".tmp", "w:gz" if gz else "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    os.replace(path + ".tmp", path)
for i, (_, members) in enumerate(bins[:7]):
    write_tar(os.path.join(out, f"runs-{i + 1}.tar"), members)
extra = [(f"logs/{os.path.basename(p)}", open(p, "rb").read()) for p in glob.glob(os.path.join(logs, "*"))]
extra += [(f"meta/{os.path.relpath(p, cache)}", open(p, "rb").read())
          for p in glob.glob(os.path.join(cache, "tasks", "*", "meta.json"))]
write_tar(os.path.join(out, "logs.tgz"), extra, gz=True)
if len(bins) > 7:
    print(f"collect: {len(bins) - 7} run bundles did not fit the return limits", flush=True)
PY
}

# ---------------------------------------------------------------- data
python3 "$T/pack.py" --unpack "$FILES" --data "$DATA" --cache-dir "$CACHE" || exit 1
LIMITS=()
if [ "$LIMIT" != 0 ]; then LIMITS=(--limit-per-class "$LIMIT" --camvid-limit "$LIMIT"); fi
spids=()
for ds in ${DATASETS//,/ }; do
  python3 "$T/latents.py" --data "$DATA" --cache-dir "$CACHE" --steps source --datasets "$ds" \
    "${LIMITS[@]}" >"$LOGS/source-$ds.out" 2>&1 &
  spids+=($!)
done
for pid in "${spids[@]}"; do
  wait "$pid" || { log "source step failed"; tail -n 5 "$LOGS"/source-*.out; exit 1; }
done
log "source arrays ready"

cls_common=(--cache_dir "$CACHE" --device "$DEVICE" --epochs "$EPOCHS" --ckpt_interval_s 60
            --log_interval 50)
seg_common=(--cache_dir "$CACHE" --device "$DEVICE" --steps "$SEG_STEPS" --batch_size "$SEG_BATCH"
            --ckpt_interval_s 60 --log_interval 50)
if [ "$MAX_STEPS" != 0 ]; then
  cls_common+=(--max_steps "$MAX_STEPS" --eval_interval "$MAX_STEPS")
  seg_common=(--cache_dir "$CACHE" --device "$DEVICE" --steps "$MAX_STEPS" --batch_size "$SEG_BATCH"
              --eval_interval "$MAX_STEPS" --log_interval 10)
fi

# A codec's latents of every dataset (the shipped ONNX graphs in PyTorch on DEVICE).
codec_latents() {
  python3 "$T/latents.py" --data "$DATA" --cache-dir "$CACHE" --codec-onnx "$REPO/models/$1" \
    --device "$DEVICE" --steps latents --datasets "$DATASETS" --batch 64 "${LIMITS[@]}" \
    >"$LOGS/latents-$1.out" 2>&1
}

# A codec's decoded CamVid pixels (kept if already there: the teacher and the baseline share them).
codec_decoded() {
  python3 "$T/latents.py" --data "$DATA" --cache-dir "$CACHE" --codec-onnx "$REPO/models/$1" \
    --device "$DEVICE" --steps decoded --datasets camvid --check 0 "${LIMITS[@]}"
}

# The seg-decoded-* baseline's logits on the codec's decoded CamVid train pixels (teacher.py).
seg_teacher() {
  codec_decoded "$1" >"$LOGS/decoded-$1.out" 2>&1 &&
  python3 "$T/teacher.py" "$REPO/models/baselines/seg-decoded-$1/segmenter.onnx" --name "seg-decoded-$1" \
    --codec_id "$1" --cache_dir "$CACHE" --num_threads 8 --batch 8 >"$LOGS/teacher-$1.out" 2>&1
}

# A codec's decoded CamVid pixels, then the seg-decoded baseline on them (run name $2).
decoded_baseline() {
  codec_decoded "$1" &&
  python3 "$T/segment.py" --input decoded --codec_id "$1" --run_name "$2" "${seg_common[@]}"
}

# Architecture trials: latents only, then one run per variant and codec.
if [ -n "${VARIANTS:-}" ]; then
  for codec in $CODECS; do
    codec_latents "$codec" || { log "latents failed"; tail -n 5 "$LOGS/latents-$codec.out"; exit 1; }
    if [[ "$VARIANTS" == *@SEG_TEACHER@* ]]; then
      seg_teacher "$codec" || { log "seg teacher failed"; tail -n 5 "$LOGS/decoded-$codec.out" "$LOGS/teacher-$codec.out"; exit 1; }
      log "seg teacher of $codec ready"
    fi
    if [ "${DECODED:-0}" = 1 ]; then
      launch "seg-decoded-$codec$SUFFIX" decoded_baseline "$codec" "seg-decoded-$codec$SUFFIX"
    fi
    IFS=';' read -ra specs <<<"$VARIANTS"
    for spec in "${specs[@]}"; do
      read -r vname task overrides <<<"$spec"
      if [[ "$vname" == *@* ]]; then          # name@codec: this codec only
        [ "${vname#*@}" = "$codec" ] || continue
        vname=${vname%@*}
      fi
      run="$task-latent-$codec-$vname$SUFFIX"
      overrides=${overrides//@SEG_TEACHER@/$CACHE/tasks/teachers/seg-decoded-$codec.npy}
      if [ "$task" = cls ]; then
        # shellcheck disable=SC2086
        launch "$run" python3 "$T/classify.py" --input latent --codec_id "$codec" --run_name "$run" "${cls_common[@]}" $overrides
      else
        # shellcheck disable=SC2086
        launch "$run" python3 "$T/segment.py" --input latent --codec_id "$codec" --run_name "$run" "${seg_common[@]}" $overrides
      fi
    done
  done
  CODECS=""
fi

# The RGB baselines need nothing from a codec: they start at once.
if [ -z "${VARIANTS:-}" ]; then
launch "cls-rgb$SUFFIX" python3 "$T/classify.py" --input rgb --run_name "cls-rgb$SUFFIX" "${cls_common[@]}"
launch "cls-rgb-cheap$SUFFIX" python3 "$T/classify.py" --input rgb-cheap --run_name "cls-rgb-cheap$SUFFIX" "${cls_common[@]}"
launch "seg-rgb$SUFFIX" python3 "$T/segment.py" --input rgb --run_name "seg-rgb$SUFFIX" "${seg_common[@]}"
fi

# Each codec: latents, then its latent models; CamVid decoded pixels, then the decoded baseline.
for codec in $CODECS; do
  (
    set -e
    codec_latents "$codec"
    python3 "$T/classify.py" --input latent --codec_id "$codec" --run_name "cls-latent-$codec$SUFFIX" \
      "${cls_common[@]}" >"$LOGS/cls-latent-$codec$SUFFIX.out" 2>&1 &
    python3 "$T/segment.py" --input latent --codec_id "$codec" --run_name "seg-latent-$codec$SUFFIX" \
      "${seg_common[@]}" >"$LOGS/seg-latent-$codec$SUFFIX.out" 2>&1 &
    decoded_baseline "$codec" "seg-decoded-$codec$SUFFIX" >"$LOGS/seg-decoded-$codec$SUFFIX.out" 2>&1
    wait
  ) &
  pids+=($!)
  names+=("codec-$codec")
  log "started codec-$codec (latents, then its models)"
done

# ---------------------------------------------------------------- wait, collect every minute
last=$(date +%s)
while :; do
  alive=0
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
  [ $alive = 0 ] && break
  if [ "$(elapsed)" -ge "$DEADLINE_S" ]; then
    log "deadline: stopping the runs still going (they checkpoint on SIGTERM)"
    pkill -TERM -f "$T/(classify|segment|latents).py"
    sleep 20
    break
  fi
  sleep 5
  if [ $(($(date +%s) - last)) -ge 60 ]; then
    last=$(date +%s)
    collect
    if [ "$DEVICE" = cuda ]; then nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; fi
    for f in "$LOGS"/*.out; do echo "$(basename "$f"): $(grep -h '"step"' "$f" | tail -n 1 | cut -c1-150)"; done
  fi
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
collect
log "done (status $status)"
for f in "$LOGS"/*.out; do
  echo "== $(basename "$f")"
  grep -h 'torch vs onnxruntime\|"best"\|Error\|error' "$f" | tail -n 3 | cut -c1-400
done
for d in "$RUNS"/*/; do [ -f "$d/result.json" ] && echo "$(basename "$d") $(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(json.dumps(r.get("best")))' "$d/result.json" | cut -c1-300)"; done
ls -la "$OUT"
exit $status
