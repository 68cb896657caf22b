"""The README stays true: its two set-up commands and its Python example work."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_more_than_one_machine_commands_run_a_study(tmp_path):
    """The section's three lines, on this machine: a small study completes on the cluster."""
    section = README.split("## More than one machine", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.DOTALL).group(1)
    port = str(_free_port())
    commands = [line.split("#")[0].strip().rstrip("&").strip().replace("HOST", "127.0.0.1")
                .replace("8786", port) for line in block.splitlines() if line.strip()]
    scheduler, worker, study = (shlex.split(command) for command in commands)
    assert scheduler[:2] == ["dask", "scheduler"] and worker[:2] == ["dask", "worker"]
    assert study[:2] == ["lfm-abm", "run"] and "--scheduler" in study
    bin_dir = Path(sys.executable).parent
    started = [subprocess.Popen([str(bin_dir / scheduler[0]), *scheduler[1:],
                                 "--no-dashboard"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)]
    try:
        started.append(subprocess.Popen([str(bin_dir / worker[0]), *worker[1:],
                                         "--no-dashboard"], cwd=tmp_path,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        study[2] = str(ROOT / "studies" / "quick.toml")  # small instead of a thousand runs
        result = subprocess.run([str(bin_dir / study[0]), *study[1:], "--rounds", "4",
                                 "--seeds", "1", "--quiet", "--out", str(tmp_path / "out")],
                                capture_output=True, text=True, timeout=600)
    finally:
        for process in started:
            process.terminate()
            process.wait(timeout=30)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert len(manifest["current_runs"]) == 12
    assert all(manifest["runs"][r]["status"] == "finished" for r in manifest["current_runs"])


def test_the_study_example_loads(tmp_path):
    """The README's "Writing a study" file is a valid study, every field it shows known."""
    from lfm_abm.study import load_study

    section = README[README.index("## Writing a study"):]
    example = section[section.index("```toml") + len("```toml"):section.index("```\n", 10)]
    (tmp_path / "agents").mkdir()
    shutil.copy(ROOT / "agents" / "cigre_mv.toml", tmp_path / "agents")
    (tmp_path / "studies").mkdir()
    path = tmp_path / "studies" / "mine.toml"
    path.write_text(example)
    spec = load_study(path)
    assert spec.variants[0].market.curtailment_price == 100.0
    assert spec.variants[0].market.emergency_priority == "least-cost"
