#!/bin/bash
# One GPU call: train kinema-tiny's teacher on from the shipped weights, distil it, export float16.
set -u
T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
BUDGET=${BUDGET:-545}          # seconds this script may use in all
PY=${PY:-python3}
WORKERS=${WORKERS:-14}
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
exec > >(tee -a "$OUT/log.txt") 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
df -h /dev/shm /tmp | cat; nproc; free -g | head -2
$PY -c "import torch, transformers, safetensors, scipy, tqdm; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"
mkdir -p /tmp/te && tar xJf .gpu/te.tar.xz -C /tmp/te && ls /tmp/te/minilm-world
SHM_GB=$(df -BG --output=avail /dev/shm | tail -1 | tr -dc 0-9)
B=${B:-256}; BATCHES=${BATCHES:-200}
if [ "${SHM_GB:-0}" -lt 40 ] && [ $B -gt 128 ]; then B=128; BATCHES=$((BATCHES * 2)); echo "small /dev/shm: batch $B"; fi
T_TEACHER=${T_TEACHER:-345}; T_DISTILL=${T_DISTILL:-105}
K="$PY -m kinema.cli"
VAE=src/kinema/weights/kinema-tiny
save_meta() {
  tar czf "$OUT/meta.tar.gz" --exclude='*.safetensors' --exclude=checkpoints --exclude=latent_cache -C /tmp runs .gpu_configs 2>/dev/null
}
train_teacher() {
  mkdir -p /tmp/.gpu_configs && $PY .gpu/configs.py $B $BATCHES $1 $T_DISTILL /tmp/.gpu_configs
  sed -i "s/\"num_workers\": 14/\"num_workers\": $WORKERS/" /tmp/.gpu_configs/*.json
  rm -rf /tmp/runs/teacher
  echo "== teacher: batch $B, cache $BATCHES batches, time limit $1 s, at $(el) s"
  $K train dit --preset tiny --config /tmp/.gpu_configs/teacher.json --vae $VAE --out /tmp/runs/teacher
}
train_teacher $T_TEACHER; rc=$?
if [ $rc -ne 0 ] && [ $(el) -lt 200 ]; then
  B=64; BATCHES=600; left=$(( BUDGET - $(el) - T_DISTILL - 70 ))
  echo "== teacher failed (rc $rc) at $(el) s; again at batch 64 for $left s"
  train_teacher $left; rc=$?
fi
save_meta
if [ $rc -ne 0 ] || [ ! -d /tmp/runs/teacher/final ]; then echo "== teacher failed, rc $rc, at $(el) s"; exit 1; fi
$PY .gpu/export_fp16.py /tmp/runs/teacher/final "$OUT/teacher"
D=$(( BUDGET - $(el) - 35 )); [ $D -gt $T_DISTILL ] && D=$T_DISTILL
if [ $D -lt 30 ]; then echo "== no time left to distil ($D s) at $(el) s"; exit 0; fi
$PY .gpu/configs.py $B $BATCHES 1 $D /tmp/.gpu_configs
sed -i "s/\"num_workers\": 14/\"num_workers\": $WORKERS/" /tmp/.gpu_configs/*.json
echo "== distil: batch $B, time limit $D s, at $(el) s"
$K train dit --preset tiny --config /tmp/.gpu_configs/distill.json --vae $VAE --out /tmp/runs/distill; rc=$?
save_meta
if [ $rc -eq 0 ] && [ -d /tmp/runs/distill/final ]; then $PY .gpu/export_fp16.py /tmp/runs/distill/final "$OUT/student"; fi
echo "== done at $(el) s, distil rc $rc"
ls -la "$OUT" "$OUT"/*
