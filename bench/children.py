"""One process per benchmark variant: peak RSS is per process, and allocator settings must precede the work.

A bench script runs itself with `--child <variant>` (plus its own arguments) and prints one JSON line;
`alternating_runs` collects those lines, the variants taking turns and alternating which goes first.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def status_mb(field: str) -> float:
    """A /proc/self/status figure (VmRSS now, VmHWM the peak so far) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def alternating_runs(script: str, names: list[str], repeats: int, args: list[str],
                     echo: bool = False) -> dict[str, list[dict]]:
    """`repeats` rounds of `script --child <name> *args` for every name; each child's last stdout line, parsed."""
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for i in range(repeats):
        for name in (names[::-1] if i % 2 else names):  # alternate which variant goes first
            cmd = [sys.executable, script, "--child", name, *args]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            runs[name].append(json.loads(out.strip().splitlines()[-1]))
            if echo:
                print(name, runs[name][-1], flush=True)
    return runs
