"""Every benchmark `make bench` runs still starts: its imports of the package and of the
fakes resolve and its options parse (a renamed function would otherwise be found only
by the next person measuring)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = sorted(re.findall(r"benchmarks/(\w+)\.py", (ROOT / "Makefile").read_text()))


def test_make_bench_runs_benchmarks() -> None:
    assert {"inbound", "processes"} <= set(BENCHMARKS)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_a_benchmark_starts(name: str) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), "--help"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout
