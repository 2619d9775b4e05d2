"""Start-up cost: ``import model_orchestrator`` and ``orchestrator --help`` against bare ``python -c pass``.

Each command runs ``--repeats`` times in a fresh subprocess, interleaved, and the median wall time and
median CPU time (user + system, from the child's rusage) are printed with their increments over bare
Python measured in the same run. On a shared machine the wall time swings with the load; the CPU time
is what the command itself costs, so the targets are judged on both. Issue 13's targets: importing the
package costs at most 150 ms over bare Python (the package root is lazy, so ``from model_orchestrator
import Orchestrator``, what a user's program does, is measured too); ``orchestrator --help`` answers
within 300 ms in all. ``--detail N`` also prints the N slowest imports (self time, ``python -X
importtime``) of the façade import and of ``--help``.

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
        "import the façade": [sys.executable, "-c", "from model_orchestrator import Orchestrator"],
        "orchestrator --help": [*orchestrator_command(), "--help"],
    }


def run_once(argv: list[str]) -> tuple[float, float]:
    """(wall ms, CPU ms) of one run of ``argv``, its output discarded."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = (time.perf_counter() - start) * 1000
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv)} exited with {proc.returncode}")
    return wall, (usage.ru_utime + usage.ru_stime) * 1000


def medians(argvs: dict[str, list[str]], repeats: int) -> dict[str, tuple[float, float]]:
    """Median (wall ms, CPU ms) of each command, interleaved so a busy moment hits all of them."""
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in argvs}
    for _ in range(repeats):
        for name, argv in argvs.items():
            runs[name].append(run_once(argv))
    return {
        name: (statistics.median(w for w, _ in values), statistics.median(c for _, c in values))
        for name, values in runs.items()
    }


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
    figures = medians(argvs, args.repeats)
    wall0, cpu0 = figures["python -c pass"]
    print(
        f"start-up, medians of {args.repeats} interleaved runs; cores: {os.cpu_count()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"  {'command':28} {'wall ms':>8} {'over python':>11} {'CPU ms':>8} {'over python':>11}")
    for name, (wall, cpu) in figures.items():
        print(f"  {name:28} {wall:8.1f} {wall - wall0:+11.1f} {cpu:8.1f} {cpu - cpu0:+11.1f}")
    print("issue 13 targets (wall / CPU):")
    imported = [figures["import model_orchestrator"][i] - (wall0, cpu0)[i] for i in (0, 1)]
    facade = [figures["import the façade"][i] - (wall0, cpu0)[i] for i in (0, 1)]
    help_ms = list(figures["orchestrator --help"])
    for label, values, target in (
        ("import model_orchestrator, over bare python", imported, IMPORT_TARGET_MS),
        ("import the façade, over bare python", facade, IMPORT_TARGET_MS),
        ("orchestrator --help, in all", help_ms, HELP_TARGET_MS),
    ):
        verdicts = "/".join("met" if v <= target else "not met" for v in values)
        print(f"  {label:44} {values[0]:6.1f} / {values[1]:6.1f} ms (target <= {target:.0f}: {verdicts})")
    if args.detail:
        for name in ("import the façade", "orchestrator --help"):
            print(f"\nslowest imports of {name} (self ms, one run under -X importtime)")
            for ms, module in slowest_imports(argvs[name], args.detail):
                print(f"  {ms:7.1f}  {module}")


if __name__ == "__main__":
    main()
