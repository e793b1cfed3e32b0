"""kinema.allocator: freed blocks stay in the process, so reusing them costs no page faults.

The setting is process-wide and made once, so each case runs in a fresh interpreter.
"""

import json
import os
import platform
import subprocess
import sys

import pytest

glibc_only = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="the allocator setting exists only for glibc's malloc (Linux)",
)

# allocate, fill and free a 64 MiB tensor, then a 32 MiB one: the resident set left after each free
# (MiB above the start) and the page faults of each allocation
PROBE = """
import json, resource, sys
import torch
torch.set_num_threads(1)
from kinema.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else {}
again = keep_freed_memory() if sys.argv[1] == "keep" else {}

def resident_mib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024

start = resident_mib()
kept, faults = [], []
for mib in (64, 32):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.ones(mib << 18)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    del x
    kept.append(resident_mib() - start)
print(json.dumps({"applied": applied, "again": again, "kept_mib": kept, "faults": faults}))
"""


def probe(mode: str, env_value: str | None = None) -> dict:
    env = dict(os.environ)
    env.pop("KINEMA_KEEP_FREED_MEMORY", None)
    if env_value is not None:
        env["KINEMA_KEEP_FREED_MEMORY"] = env_value
    proc = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@glibc_only
def test_a_freed_block_stays_in_the_process_and_is_reused_without_page_faults():
    kept = probe("keep")
    assert kept["applied"]["mmap_threshold"] >= 32 << 20
    assert kept["applied"]["trim_threshold"] >= 1 << 30
    assert kept["again"] == kept["applied"]  # set once per process
    assert kept["kept_mib"][0] >= 60  # freed, but still the process's
    assert kept["faults"][0] >= 16000  # 64 MiB of fresh pages the first time...
    assert kept["faults"][1] < 100, kept["faults"]  # ...and none for 32 MiB in the freed block


@glibc_only
def test_without_the_setting_glibc_returns_the_block_and_faults_it_in_again():
    plain = probe("plain")
    assert plain["kept_mib"][0] < 8, plain["kept_mib"]
    assert plain["faults"][0] >= 16000 and plain["faults"][1] >= 8000, plain["faults"]


def test_the_setting_can_be_switched_off():
    off = probe("keep", env_value="0")
    assert off["applied"] == {} and off["again"] == {}


WIRING = """
import json
from kinema.allocator import kept_setting
from kinema.pipeline import Pipeline
before = kept_setting()
Pipeline.from_pretrained()
print(json.dumps({"before": before, "after": kept_setting()}))
"""


@glibc_only
def test_making_a_pipeline_keeps_freed_memory():
    env = {k: v for k, v in os.environ.items() if k != "KINEMA_KEEP_FREED_MEMORY"}
    proc = subprocess.run([sys.executable, "-c", WIRING], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["before"] is None
    assert res["after"]["mmap_threshold"] >= 32 << 20
