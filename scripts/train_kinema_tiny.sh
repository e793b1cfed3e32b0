#!/usr/bin/env bash
# The recipe of the shipped model: train the autoencoder, then the transformer, on the world's
# train split (never a held-out combination), ship the weights, and benchmark them.
#
#   scripts/train_kinema_tiny.sh OUT_DIR
#
# Environment: VAE_SECONDS, DIT_SECONDS (training time limits; the LR schedule ends with them),
# WORKERS (data-loader processes), PRESET (tiny; smoke for a quick check), TEXT_ENCODER (a local
# copy of all-MiniLM-L6-v2 where the package is not installed), EVAL_N (prompts per category),
# VAE_BATCH / DIT_BATCH (per-process batch sizes; the presets use 8 and 16, sized for a CPU),
# INIT (a pipeline folder to fine-tune from, e.g. src/kinema/weights/kinema-tiny: both stages start
# from its weights), PRECISION (auto = bf16 on CUDA, fp32 on CPU; bf16 is about 2x faster on a CPU
# with AVX512-BF16), VAE_LR / DIT_LR, WARMUP (steps), DIT_BUCKETS (a JSON list overriding the
# preset's buckets), LATENT_CACHE_BATCHES (train the transformer from that many cached batches),
# VAE_TRAINABLE (decoder: with INIT, fine-tune the autoencoder's decoder only, keeping its latent space),
# VAE_OBJECT_LOSS (object_loss_weight: extra loss averaged over foreground pixels), VAE_BUCKETS (a JSON
# list overriding the autoencoder stage's buckets), DIT_OBJECT_LOSS (the transformer stage's
# object_loss_weight: extra flow loss averaged over latent positions that hold an object).
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

common="\"steps\": 1000000, \"precision\": \"${PRECISION:-auto}\""
[ -n "${INIT:-}" ] && common="$common, \"init\": \"$INIT\""
vae_optim="\"warmup_steps\": ${WARMUP:-500}"
[ -n "${VAE_BATCH:-}" ] && vae_optim="$vae_optim, \"batch_size\": $VAE_BATCH"
[ -n "${VAE_LR:-}" ] && vae_optim="$vae_optim, \"lr\": $VAE_LR"
dit_optim="\"warmup_steps\": ${WARMUP:-300}"
[ -n "${DIT_BATCH:-}" ] && dit_optim="$dit_optim, \"batch_size\": $DIT_BATCH"
[ -n "${DIT_LR:-}" ] && dit_optim="$dit_optim, \"lr\": $DIT_LR"
dit_data="\"num_workers\": $WORKERS"
[ -n "${DIT_BUCKETS:-}" ] && dit_data="$dit_data, \"buckets\": $DIT_BUCKETS"
[ -n "${LATENT_CACHE_BATCHES:-}" ] && dit_data="$dit_data, \"latent_cache\": true, \"latent_cache_batches\": $LATENT_CACHE_BATCHES"

vae_fields=""
[ -n "${VAE_TRAINABLE:-}" ] && vae_fields=", \"vae_trainable\": \"$VAE_TRAINABLE\""
[ -n "${VAE_OBJECT_LOSS:-}" ] && vae_fields="$vae_fields, \"object_loss_weight\": $VAE_OBJECT_LOSS"
vae_data="\"num_workers\": $WORKERS"
[ -n "${VAE_BUCKETS:-}" ] && vae_data="$vae_data, \"buckets\": $VAE_BUCKETS"
echo "{\"time_limit_s\": $VAE_SECONDS, $common$vae_fields, \"optim\": {$vae_optim}, \"data\": {$vae_data}}" > "$OUT/vae.json"
$KINEMA train vae --preset "$PRESET" --config "$OUT/vae.json" --out "$OUT/vae" --quiet

dit_fields=""
[ -n "${DIT_OBJECT_LOSS:-}" ] && dit_fields=", \"object_loss_weight\": $DIT_OBJECT_LOSS"
echo "{\"time_limit_s\": $DIT_SECONDS, $common$dit_fields, \"optim\": {$dit_optim}, \"data\": {$dit_data}$te_field}" > "$OUT/dit.json"
$KINEMA train dit --preset "$PRESET" --config "$OUT/dit.json" --vae "$OUT/vae/final" --out "$OUT/dit" --quiet

$PY scripts/ship_model.py "$OUT/dit/final" "$OUT/kinema-tiny" ${TEXT_ENCODER:+--text-encoder "$TEXT_ENCODER"}
$KINEMA eval --model "$OUT/kinema-tiny" --n "$EVAL_N" -o "$OUT/eval" > "$OUT/eval.log"
