"""The README stays true: its two set-up commands and its Python example work."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_exactly_two_setup_commands():
    commands = re.findall(r"^python -m pip install .*$", README, flags=re.MULTILINE)
    assert commands == ['python -m pip install -e . && lfm-abm run studies/designs.toml',
                        'python -m pip install -e ".[test]" && python -m pytest']
    assert (ROOT / "studies" / "designs.toml").is_file()
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -e "\\.\\[test\\]"' in ci


def test_python_example_runs_and_prints_costs():
    code = re.search(r"```python\n(.*?)```", README, flags=re.DOTALL).group(1)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, check=True)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("DSO cost, first 20 rounds:")
    assert all(float(line.split(":")[1]) > 0 for line in lines)
