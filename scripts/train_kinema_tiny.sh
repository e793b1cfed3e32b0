#!/usr/bin/env bash
# The recipe of the shipped model: train the autoencoder, then the transformer, on the world's
# train split (never a held-out combination), ship the weights, and benchmark them.
#
#   scripts/train_kinema_tiny.sh OUT_DIR
#
# Environment: VAE_SECONDS, DIT_SECONDS (training time limits; the LR schedule ends with them),
# WORKERS (data-loader processes), PRESET (tiny; smoke for a quick check), TEXT_ENCODER (a local
# copy of all-MiniLM-L6-v2 where the package is not installed), EVAL_N (prompts per category),
# VAE_BATCH / DIT_BATCH (per-process batch sizes; the presets use 8 and 16, sized for a CPU).
set -euo pipefail
OUT=${1:?usage: train_kinema_tiny.sh OUT_DIR}
PRESET=${PRESET:-tiny}
VAE_SECONDS=${VAE_SECONDS:-3600}
DIT_SECONDS=${DIT_SECONDS:-10800}
WORKERS=${WORKERS:-2}
EVAL_N=${EVAL_N:-200}
PY=${PYTHON:-python3}
KINEMA="$PY -m kinema.cli"
mkdir -p "$OUT"
te_field=""
[ -n "${TEXT_ENCODER:-}" ] && te_field=", \"text_encoder\": \"$TEXT_ENCODER\""

vae_batch=""; [ -n "${VAE_BATCH:-}" ] && vae_batch=", \"optim\": {\"batch_size\": $VAE_BATCH}"
dit_batch=""; [ -n "${DIT_BATCH:-}" ] && dit_batch=", \"batch_size\": $DIT_BATCH"
echo "{\"time_limit_s\": $VAE_SECONDS, \"steps\": 1000000, \"data\": {\"num_workers\": $WORKERS}$vae_batch}" > "$OUT/vae.json"
$KINEMA train vae --preset "$PRESET" --config "$OUT/vae.json" --out "$OUT/vae" --quiet

echo "{\"time_limit_s\": $DIT_SECONDS, \"steps\": 1000000, \"optim\": {\"warmup_steps\": 300$dit_batch}, \"data\": {\"num_workers\": $WORKERS}$te_field}" > "$OUT/dit.json"
$KINEMA train dit --preset "$PRESET" --config "$OUT/dit.json" --vae "$OUT/vae/final" --out "$OUT/dit" --quiet

$PY scripts/ship_model.py "$OUT/dit/final" "$OUT/kinema-tiny" ${TEXT_ENCODER:+--text-encoder "$TEXT_ENCODER"}
$KINEMA eval --model "$OUT/kinema-tiny" --n "$EVAL_N" -o "$OUT/eval" > "$OUT/eval.log"
