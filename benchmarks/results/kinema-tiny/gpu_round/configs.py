"""Write the teacher and distillation configs for batch size B (argv: B CACHE_BATCHES TEACHER_S DISTILL_S OUTDIR)."""
import json, sys
b, batches, t_s, d_s, out = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
buckets = [[128, 128, 25], [128, 128, 25], [128, 128, 25], [224, 128, 25], [128, 224, 25],
           [176, 96, 25], [96, 176, 25], [128, 128, 1, 2 * b]]
data = {"num_workers": 14, "latent_cache": True, "latent_cache_batches": batches,
        "latent_cache_dir": f"/tmp/lcache_b{b}", "buckets": buckets}
common = {"steps": 1000000, "precision": "bf16", "checkpoint_every": 100000, "object_loss_weight": 1.0,
          "text_encoder": "/tmp/te/minilm-world", "seed": 3, "data": data}
teacher = dict(common, time_limit_s=t_s, init="src/kinema/weights/kinema-tiny", ema_decay=0.999, log_every=25,
               optim={"lr": 3e-4, "warmup_steps": 100, "batch_size": b})
distill = dict(common, time_limit_s=d_s, init="/tmp/runs/teacher/final", guidance_distill=5.0, ema_decay=0.995,
               log_every=10, optim={"lr": 1e-4, "warmup_steps": 20, "batch_size": b})
json.dump(teacher, open(f"{out}/teacher.json", "w"), indent=1)
json.dump(distill, open(f"{out}/distill.json", "w"), indent=1)
