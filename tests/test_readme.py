"""Every code block of the README runs here, on a smaller budget, so no snippet can rot.

A ``python`` block runs as a script; a ``bash`` block runs in bash with ``-e``; a block introduced
by ``<!-- excerpt: PATH -->`` must match lines of that file in order (``...`` skips lines), and
that file runs in ``tests/test_examples.py``; a ``text`` block is not code. Each block runs in a
fresh folder that sees the repository's ``examples/`` and ``benchmarks/``, with the budgets cut
by :data:`SMALLER`.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

#: (pattern, replacement): the budget each block runs with here. Only sizes change, never a name.
SMALLER = [
    (r"--trials \d+", "--trials 3"), (r"--epochs \d+", "--epochs 2"), (r"--seeds \d+", "--seeds 1"),
    (r"--top \d+", "--top 2"), (r"n_trials=\d+", "n_trials=3"), (r"num_samples=\d+", "num_samples=2"),
    (r"(?m)^epochs = \d+", "epochs = 2"), (r'"trials": \d+', '"trials": 2'), (r'"epochs": \d+', '"epochs": 2'),
    (r"\bcurl -X", "curl -fsS -X"), (r"\bcurl localhost", "curl -fsS localhost"),  # an HTTP error fails the block
]
BLOCK = re.compile(r"(?:<!-- excerpt: (?P<excerpt>\S+) -->\n)?```(?P<lang>\w*)\n(?P<code>.*?)```\n", re.S)


def blocks() -> list[tuple[str, str, str | None, int]]:
    text = README.read_text()
    found = []
    for m in BLOCK.finditer(text):
        found.append((m.group("lang"), m.group("code"), m.group("excerpt"), text[: m.start()].count("\n") + 1))
    return found


def _id(block) -> str:
    lang, _, excerpt, line = block
    return f"line{line}-{lang or 'plain'}" + ("-excerpt" if excerpt else "")


def smaller(code: str) -> str:
    for pattern, repl in SMALLER:
        code = re.sub(pattern, repl, code)
    return code


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _workdir(tmp_path: Path) -> Path:
    for name in ("examples", "benchmarks"):
        (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path


def _env() -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "COLUMNS": "160",
            "MPLBACKEND": "Agg", "RAY_ADDRESS": "local"}  # a fresh local Ray, never a cluster another test started


def test_every_block_is_checked():
    """No block escapes: every one is python, bash, an excerpt, or text."""
    found = blocks()
    assert len(found) >= 10
    for lang, code, excerpt, line in found:
        assert excerpt or lang in ("python", "bash", "text"), f"README line {line}: a ```{lang} block is not run by the tests"


@pytest.mark.parametrize("block", [b for b in blocks() if b[2]], ids=_id)
def test_excerpts_match_the_file_they_quote(block):
    _, code, excerpt, line = block
    source = (ROOT / excerpt).read_text().splitlines()
    at = 0
    for wanted in code.splitlines():
        if wanted.strip() in ("...", ""):
            continue
        while at < len(source) and source[at].rstrip() != wanted.rstrip():
            at += 1
        assert at < len(source), f"README line {line}: {wanted.strip()!r} is not in {excerpt} (in this order)"
        at += 1


@pytest.mark.slow
@pytest.mark.parametrize("block", [b for b in blocks() if b[0] == "python" and not b[2]], ids=_id)
def test_python_blocks_run(tmp_path, block):
    _, code, _, line = block
    script = tmp_path / "block.py"
    script.write_text(smaller(code))
    out = subprocess.run([sys.executable, str(script)], cwd=_workdir(tmp_path), capture_output=True, text=True,
                         timeout=600, env=_env())
    assert out.returncode == 0, f"README line {line}:\n{out.stderr[-3000:]}"


@pytest.mark.slow
@pytest.mark.parametrize("block", [b for b in blocks() if b[0] == "bash" and not b[2]], ids=_id)
def test_bash_blocks_run(tmp_path, block):
    _, code, _, line = block
    work = _workdir(tmp_path)
    if "make demo" in code:  # the two commands: `make test` is this suite, so only the demo's command runs
        for target in ("demo", "test"):
            dry = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60)
            assert dry.returncode == 0, dry.stderr
        demo = [ln for ln in subprocess.run(["make", "-n", "demo"], cwd=ROOT, capture_output=True, text=True).stdout.splitlines()
                if "automl search" in ln]
        assert len(demo) == 1, "make demo must run one automl search"
        code = re.sub(r"^\S*/?automl ", "automl ", demo[0].strip())
    code = smaller(code).replace("8000", str(_free_port()))
    out = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", code], cwd=work, capture_output=True, text=True,
                         timeout=600, env=_env())
    assert out.returncode == 0, f"README line {line}:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
