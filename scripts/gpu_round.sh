#!/bin/bash
# One GPU call of kinema-tiny training: train the shipped transformer on as a teacher, distil its
# guidance, and write both as float16 transformer shards (the shipped layout) to $OUT.
#
#   BUDGET=545 bash scripts/gpu_round.sh        # on the GPU machine, $OUT set by the device tool
#
# Settings (environment): BUDGET (seconds in all), B (clips a step), BATCHES (latent cache
# batches), T_DISTILL (seconds), WORKERS (loader processes), TE_TAR (a tar.xz of the compact text
# encoder from scripts/world_text_encoder.py, unpacked to /tmp/te; default .gpu/te.tar.xz when
# present, else the packaged MiniLM), INIT (default: the shipped model; none: from scratch), PRESET,
# BUCKETS (JSON), RELATION_CAPTIONS (0: never caption two objects by their relation),
# FRAME_POSITION (1: add the transformer's frame-position layer), CROSS_POSITION (1: add the frame
# position to every block's cross-attention queries), TEXT_REFINER (self-attention layers over the
# text tokens; 0 = none), GROUNDING (grounding loss weight; 0 = off), TEACHER_LR (default 3e-4),
# MIRROR_PAIRS (1: half of every batch is the other half mirrored), PY.
# Back on the CPU, copy the shipped folder, put $OUT/student/*.safetensors in its transformer/ and
# run `kinema eval` on it. A failed teacher run at batch B is retried once at batch 64.
set -u
T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
: "${OUT:?set OUT to the folder that receives the results}"
BUDGET=${BUDGET:-545}; PY=${PY:-python3}; WORKERS=${WORKERS:-14}; PRESET=${PRESET:-tiny}
B=${B:-256}; BATCHES=${BATCHES:-400}; T_DISTILL=${T_DISTILL:-100}
INIT=${INIT:-src/kinema/weights/kinema-tiny}; VAE=${VAE:-src/kinema/weights/kinema-tiny}
RUNS=${RUNS:-/tmp/runs}; CFG=$RUNS/configs
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$CFG"
exec > >(tee -a "$OUT/log.txt") 2>&1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv
nproc; $PY -c "import torch; print('torch', torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"

TE_TAR=${TE_TAR:-$( [ -f .gpu/te.tar.xz ] && echo .gpu/te.tar.xz )}
TE=""
if [ -n "$TE_TAR" ]; then
  mkdir -p /tmp/te && tar xJf "$TE_TAR" -C /tmp/te && TE=$(ls -d /tmp/te/*/ | head -1) && TE=${TE%/}
  echo "text encoder: $TE"
fi
# /dev/shm holds the loader's shared tensors; a small one cannot carry batches of 256 clips
SHM_GB=$(df -BG --output=avail /dev/shm 2>/dev/null | tail -1 | tr -dc 0-9)
if [ "${SHM_GB:-0}" -lt 40 ] && [ "$B" -gt 128 ]; then B=128; BATCHES=$((BATCHES * 2)); echo "small /dev/shm: batch $B"; fi

configs() {  # $1 teacher seconds, $2 distil seconds
  $PY scripts/gpu_round_configs.py "$CFG" --batch "$B" --cache-batches "$BATCHES" --teacher-s "$1" \
    --distill-s "$2" --init "$INIT" --workers "$WORKERS" --teacher-out "$RUNS/teacher" \
    --cache-dir "$RUNS/lcache_b$B$( [ "${RELATION_CAPTIONS:-1}" = 0 ] && echo _norel )$( [ "${MIRROR_PAIRS:-0}" = 1 ] && echo _mirror )" ${TE:+--text-encoder "$TE"} ${BUCKETS:+--buckets "$BUCKETS"} \
    $( [ "${FRAME_POSITION:-0}" = 1 ] && echo --frame-position ) \
    $( [ "${CROSS_POSITION:-0}" = 1 ] && echo --cross-position ) --grounding "${GROUNDING:-0}" \
    --text-refiner "${TEXT_REFINER:-0}" $( [ "${RELATION_CAPTIONS:-1}" = 0 ] && echo --no-relation-captions ) \
    --teacher-lr "${TEACHER_LR:-3e-4}" $( [ "${MIRROR_PAIRS:-0}" = 1 ] && echo --mirror-pairs )
}
train() {  # $1 teacher|distill
  echo "== $1: batch $B, cache $BATCHES batches, at $(el) s"
  rm -rf "$RUNS/$1"
  $PY -m kinema.cli train dit --preset "$PRESET" --config "$CFG/$1.json" --vae "$VAE" --out "$RUNS/$1"
}
export_shards() {  # $1 run folder, $2 name under $OUT: float16 shards of at most 15 MiB, as shipped
  $PY scripts/ship_model.py "$1/final" "$RUNS/ship_$2" ${TE:+--text-encoder "$TE"} \
    && mkdir -p "$OUT/$2" && cp "$RUNS/ship_$2"/transformer/* "$OUT/$2/" && echo "== exported $2 at $(el) s"
}
keep_logs() {
  for r in teacher distill; do
    [ -f "$RUNS/$r/metrics.jsonl" ] && cp "$RUNS/$r/metrics.jsonl" "$OUT/${r}_metrics.jsonl"
    [ -f "$CFG/$r.json" ] && cp "$CFG/$r.json" "$OUT/${r}_config.json"
  done
}

T_TEACHER=$(( BUDGET - $(el) - T_DISTILL - 60 ))   # 60 s for the two exports and start-ups
configs "$T_TEACHER" "$T_DISTILL"; train teacher; rc=$?
if [ $rc -ne 0 ] && [ "$(el)" -lt $(( BUDGET / 3 )) ] && [ "$B" -gt 64 ]; then
  B=64; BATCHES=$((BATCHES * 4)); T_TEACHER=$(( BUDGET - $(el) - T_DISTILL - 60 ))
  echo "== teacher failed (rc $rc); again at batch $B for $T_TEACHER s"
  configs "$T_TEACHER" "$T_DISTILL"; train teacher; rc=$?
fi
keep_logs
if [ $rc -ne 0 ] || [ ! -d "$RUNS/teacher/final" ]; then echo "== teacher failed, rc $rc, at $(el) s"; exit 1; fi
export_shards "$RUNS/teacher" teacher
D=$(( BUDGET - $(el) - 30 )); [ "$D" -gt "$T_DISTILL" ] && D=$T_DISTILL
if [ "$D" -lt 20 ]; then echo "== no time left to distil ($D s) at $(el) s"; exit 0; fi
configs "$T_TEACHER" "$D"; train distill; rc=$?
keep_logs
if [ $rc -eq 0 ] && [ -d "$RUNS/distill/final" ]; then export_shards "$RUNS/distill" student; fi
echo "== done at $(el) s, distil rc $rc"
ls -la "$OUT" "$OUT"/*/
exit $rc
