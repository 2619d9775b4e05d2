"""Start-up cost: ``import model_orchestrator`` and ``orchestrator --help`` against bare ``python -c pass``.

Each command runs ``--repeats`` times in a fresh subprocess, interleaved, and the median wall time is
printed with its increment over bare Python measured in the same run. Issue 13's targets: importing the
package costs at most 150 ms over bare Python; ``orchestrator --help`` answers within 300 ms in all.
``--detail N`` also prints the N slowest imports (self time, ``python -X importtime``) of each.

Usage: python benchmarks/startup.py [--repeats 9] [--detail 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

IMPORT_TARGET_MS = 150.0
HELP_TARGET_MS = 300.0


def orchestrator_command() -> list[str]:
    found = shutil.which("orchestrator") or str(Path(sys.executable).with_name("orchestrator"))
    return [found] if Path(found).exists() else [sys.executable, "-m", "model_orchestrator"]


def commands() -> dict[str, list[str]]:
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "import model_orchestrator": [sys.executable, "-c", "import model_orchestrator"],
        "orchestrator --help": [*orchestrator_command(), "--help"],
    }


def median_walls(argvs: dict[str, list[str]], repeats: int) -> dict[str, float]:
    """Median wall ms of each command, the commands interleaved so a busy moment hits all of them."""
    times: dict[str, list[float]] = {name: [] for name in argvs}
    for _ in range(repeats):
        for name, argv in argvs.items():
            start = time.perf_counter()
            subprocess.run(argv, capture_output=True, check=True)
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def slowest_imports(argv: list[str], count: int) -> list[tuple[float, str]]:
    """The ``count`` imports with the largest self time (ms) when ``argv`` runs under -X importtime."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    stderr = subprocess.run(argv, capture_output=True, text=True, check=True, env=env).stderr
    rows = []
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "self [us]" not in line:
            self_us, _cumulative, name = line.removeprefix("import time:").split("|")
            rows.append((int(self_us) / 1000, name.strip()))
    return sorted(rows, reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--detail", type=int, default=0, help="print the N slowest imports of each command")
    args = parser.parse_args()
    argvs = commands()
    walls = median_walls(argvs, args.repeats)
    python = walls["python -c pass"]
    print(
        f"start-up, median wall ms of {args.repeats} interleaved runs; cores: {os.cpu_count()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    for name, wall in walls.items():
        print(f"  {name:28} {wall:8.1f}   (+{wall - python:.1f} ms over bare python)")
    imported = walls["import model_orchestrator"] - python
    help_ms = walls["orchestrator --help"]
    print("issue 13 targets:")
    print(
        f"  import model_orchestrator over bare python  {imported:6.1f} ms "
        f"(target <= {IMPORT_TARGET_MS:.0f}: {'met' if imported <= IMPORT_TARGET_MS else 'not met'})"
    )
    print(
        f"  orchestrator --help, in all                 {help_ms:6.1f} ms "
        f"(target <= {HELP_TARGET_MS:.0f}: {'met' if help_ms <= HELP_TARGET_MS else 'not met'})"
    )
    if args.detail:
        for name in ("import model_orchestrator", "orchestrator --help"):
            print(f"\nslowest imports of {name} (self ms, one run under -X importtime)")
            for ms, module in slowest_imports(argvs[name], args.detail):
                print(f"  {ms:7.1f}  {module}")


if __name__ == "__main__":
    main()
