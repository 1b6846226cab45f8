"""Figures of number checking (issue 17), printed; run by hand from the repository:

    .venv/bin/python -m bench.numbers [-n 100000]

`ecosms-gw numbers check` (no account: the defaults, no database) over a file of mixed
numbers (the mix of tests/support/samples.py), output to /dev/null: numbers checked
per second of wall time and per CPU-second of the process (it runs on one core), median
of 3 runs.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.samples import mixed_numbers

COMMAND = str(Path(sys.executable).parent / "ecosms-gw")


def run(path: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one check of the file."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([COMMAND, "numbers", "check", str(path)], stdout=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=100_000)
    count = parser.parse_args().n
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "numbers.txt"
        path.write_text("\n".join(mixed_numbers(count)) + "\n")
        runs = [run(path) for _ in range(3)]
    wall, cpu = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
    print(f"numbers check, {count:,} mixed numbers (CLI, one process): {count / wall:,.0f} numbers/s "
          f"({wall:.1f} s, start-up included), {count / cpu:,.0f} per CPU-second")


if __name__ == "__main__":
    main()
