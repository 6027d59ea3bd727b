"""Run the real Snakemake workflow on a copy of the repository, and read its dry-run plans."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns(".git", ".venv", "results", ".snakemake", "__pycache__", "*.egg-info",
                                ".pytest_cache", "bench")


def rule_blocks(root: Path) -> dict[str, str]:
    """{rule: its text} for every rule and checkpoint in rules/*.smk."""
    blocks = {}
    for smk in sorted((root / "rules").glob("*.smk")):
        for block in re.split(r"^(?=(?:rule|checkpoint) \w+:)", smk.read_text(), flags=re.M):
            if name := re.match(r"(?:rule|checkpoint) (\w+):", block):
                blocks[name.group(1)] = block
    return blocks


def script_rules(root: Path) -> dict[str, str]:
    """{rule: script path relative to the workflow root} for every rule with a `script:` in rules/*.smk."""
    found = {}
    for name, block in rule_blocks(root).items():
        if script := re.search(r"^\s+script:\s*\n?\s*[\"']([^\"']+)[\"']", block, flags=re.M):
            found[name] = os.path.normpath(os.path.join("rules", script.group(1)))
    return found


def copy_workflow(dest: Path, overrides: dict | None = None) -> Path:
    """Copy the workflow into `dest`; `overrides` are deep-merged into its config.yaml."""
    shutil.copytree(ROOT, dest, ignore=IGNORE)
    if overrides:
        cfg = yaml.safe_load((dest / "config.yaml").read_text())
        _merge(cfg, overrides)
        (dest / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return dest


def edited_config(workdir: Path, dest: Path, overrides: dict) -> str:
    """Write the workflow's config.yaml with `overrides` merged in to dest/config.yaml; return its path."""
    cfg = yaml.safe_load((workdir / "config.yaml").read_text())
    _merge(cfg, overrides)
    path = dest / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(path)


def _merge(base: dict, extra: dict) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def snakemake(workdir: Path, *args: str, timeout: int = 1200) -> subprocess.CompletedProcess:
    """Run snakemake in `workdir` (the copy's own Snakefile and config.yaml)."""
    return subprocess.run(_command(*args), cwd=workdir, capture_output=True, text=True, timeout=timeout)


def _command(*args: str) -> list[str]:
    """snakemake as the README runs it (`--cores 1`; a later `--cores` in `args` wins)."""
    return [sys.executable, "-m", "snakemake", "--cores", "1", *args]


def kill_when(workdir: Path, ready: Callable[[], bool], *args: str, timeout: float = 1200) -> None:
    """Start snakemake in `workdir` and SIGKILL it with all its jobs (its whole process group: a power cut,
    an OOM kill, a preempted node) as soon as `ready()` holds."""
    proc = subprocess.Popen(_command(*args), cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert proc.poll() is None, f"the build ended (exit {proc.returncode}) before it could be killed"
            assert time.monotonic() < deadline, "the moment to kill the build never came"
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def planned_jobs(workdir: Path, target: str, *args: str) -> dict[str, int]:
    """Rules a dry run would execute for `target`, with their job counts ({} when up to date)."""
    proc = snakemake(workdir, "-n", target, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    if "Nothing to be done" in out:
        return {}
    table = out.split("Job stats:", 1)[1]
    jobs = {}
    for line in table.splitlines()[3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m:
            break
        jobs[m.group(1)] = int(m.group(2))
    jobs.pop("total", None)
    return jobs


@contextmanager
def edited_file(path: Path, change: Callable[[str], str] = lambda text: text + "\n# edited\n") -> Iterator[None]:
    """Apply a content edit for the duration of the block (Snakemake ignores a bare touch when the
    checksum is unchanged), then restore the original text."""
    original = path.read_text()
    path.write_text(change(original))
    try:
        yield
    finally:
        path.write_text(original)
