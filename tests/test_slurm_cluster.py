"""profiles/slurm: the production config plans through it, and the whole DAG runs through it on a real
single-node SLURM (slurmctld, slurmd, slurmdbd).

tests/slurm/start_slurm.sh installs Debian's SLURM packages when they are missing (root only) and
starts the daemons with a fake GPU generic resource; the assertions read SLURM's own accounting
(sacct), so they show what the scheduler was asked for and gave, not what Snakemake meant to ask.
Where SLURM cannot start (not root, no apt, no packages) the test is skipped with the reason.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.test_workflow_full import TINY
from tests.workflow_helpers import ROOT, _merge, copy_workflow

SCRIPTS = ROOT / "tests" / "slurm"
NODE_MEM_MB = 1500  # per heavy job: the test node is small; the profile's other settings are kept
# The tiny config of test_workflow_full, cut to one epoch and two questions, training and prediction
# asking the scheduler for one GPU (the node's gres is fake, so they still run on the CPU).
TINY_SLURM = {
    "student": {"gpus": 1, "train": {"epochs": 1, "max_examples": 4}},
    "predict": {"max_examples": 2, "batch_size": 2, "max_new_tokens": 24, "max_turns": 1},
}
GPU_RULES = {"train_student", "predict_epoch", "predict_unconstrained"}
TIMEOUT_S = 1500  # the plugin can hang (a failed status command); SIGKILL, since it ignores SIGTERM


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment to run SLURM commands in, while a single-node SLURM runs; stopped afterwards."""
    state = tmp_path_factory.mktemp("slurm")
    start = subprocess.run(["bash", str(SCRIPTS / "start_slurm.sh"), str(state)], capture_output=True, text=True,
                           timeout=600)
    if start.returncode != 0:
        reason = f"SLURM could not start: {(start.stderr or start.stdout).strip()[-600:]}"
        print(reason)
        subprocess.run(["bash", str(SCRIPTS / "stop_slurm.sh"), str(state)], capture_output=True)
        pytest.skip(reason)
    yield {**os.environ, "SLURM_CONF": "/etc/slurm/slurm.conf"}
    subprocess.run(["bash", str(SCRIPTS / "stop_slurm.sh"), str(state)], capture_output=True, timeout=120)


def test_the_production_config_plans_through_the_profile(tmp_path):
    """Schema-valid as an override of config.yaml, 8 epochs, GPU rules on the GPU partition (no SLURM needed)."""
    wd = copy_workflow(tmp_path / "repo")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "results/report.md", "--configfile",
                           "profiles/slurm/qwen7b.yaml", "--profile", "profiles/slurm"], cwd=wd, capture_output=True,
                          text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    assert re.search(r"^predict_epoch\s+9$", out, re.M)  # epochs 0-8
    train = out.split("rule train_student:", 1)[1].split("\n[", 1)[0]
    assert "gpu=1" in train and "slurm_partition=gpu" in train and "mem_mb=64000" in train, train


@pytest.mark.slow
def test_profile_runs_the_dag_through_slurm_with_the_requested_resources(slurm, tmp_path):
    wd = copy_workflow(tmp_path / "repo", _merged(TINY, TINY_SLURM))
    profile = _scaled_profile(wd / "profiles" / "slurm" / "config.yaml")
    started = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 5))
    proc = subprocess.run(["timeout", "-s", "KILL", str(TIMEOUT_S), sys.executable, "-m", "snakemake",
                           "results/report.md", "--profile", "profiles/slurm"],
                          cwd=wd, env=slurm, capture_output=True, text=True)
    assert proc.returncode == 0, f"rc={proc.returncode}\n{(proc.stdout + proc.stderr)[-6000:]}"
    assert (wd / "results/report.md").exists() and (wd / "results/scores/epoch_1.json").exists()

    jobs = _accounted_jobs(slurm, started, wd)
    rules = {job["rule"] for job in jobs}
    assert {"run_teacher", "prepare_base_model", "train_student", "predict_epoch", "build_report"} <= rules
    assert all(job["State"] == "COMPLETED" and job["ExitCode"] == "0:0" for job in jobs), jobs
    for job in jobs:
        req = _tres(job["ReqTRES"])
        if job["rule"] in GPU_RULES:
            resources = profile["set-resources"][job["rule"]]
            assert req.get("gres/gpu") == "1" and _tres(job["AllocTRES"]).get("gres/gpu") == "1", job
            assert _mb(req["mem"]) == resources["mem_mb"] and job["Partition"] == resources["slurm_partition"], job
            assert req["cpu"] == str(profile["set-threads"][job["rule"]]), job
            assert job["Timelimit"] == _minutes(resources["runtime"]), job
        else:  # CPU rules stay small: the cluster's default partition, no GPU, a few GB at most
            assert "gres/gpu" not in req and job["Partition"] == "cpu" and req["cpu"] == "1", job
            assert _mb(req["mem"]) <= 4000, job
    assert sum(job["rule"] == "predict_epoch" for job in jobs) == 2  # epochs 0 and 1


def _merged(*overrides: dict) -> dict:
    out: dict = {}
    for override in overrides:
        _merge(out, yaml.safe_load(yaml.safe_dump(override)))  # a deep copy: _merge shares nested dicts
    return out


def _scaled_profile(path: Path) -> dict:
    """The repository's profile, with the heavy rules' memory and threads scaled to the one small node
    and fast status checks; everything else (partitions, status command, runtimes) as committed."""
    profile = yaml.safe_load(path.read_text())
    for resources in profile["set-resources"].values():
        resources["mem_mb"] = NODE_MEM_MB
    profile["set-threads"] = {rule: 1 for rule in profile["set-threads"]}
    profile.update({"slurm-init-seconds-before-status-checks": 2, "latency-wait": 5, "retries": 0})
    path.write_text(yaml.safe_dump(profile, sort_keys=False))
    return profile


def _accounted_jobs(env: dict[str, str], since: str, workdir: Path) -> list[dict[str, str]]:
    """sacct's allocation records of the jobs that ran in `workdir`, each with the rule named in its comment."""
    fields = ["JobID", "Partition", "State", "ExitCode", "ReqTRES", "AllocTRES", "Timelimit", "Comment", "WorkDir"]
    out = subprocess.run(["sacct", "-X", "-P", "-n", "-S", since, f"--format={','.join(fields)}"], env=env,
                         capture_output=True, text=True, check=True).stdout
    rows = [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line]
    jobs = [row for row in rows if Path(row["WorkDir"]) == workdir]
    for job in jobs:
        job["rule"] = job["Comment"].removeprefix("rule_").split("_wildcards_")[0]
    assert jobs, f"sacct has no job that ran in {workdir}:\n{out}"
    return jobs


def _tres(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split(",") if item)


def _mb(amount: str) -> int:
    """sacct's memory amount (700M, 2G, 1T) in MB."""
    return int(float(amount[:-1]) * {"M": 1, "G": 1024, "T": 1024**2}[amount[-1]])


def _minutes(runtime: int) -> str:
    """A runtime in minutes as sacct writes a time limit ([D-]HH:MM:SS)."""
    days, rest = divmod(runtime, 24 * 60)
    clock = f"{rest // 60:02d}:{rest % 60:02d}:00"
    return f"{days}-{clock}" if days else clock
