#!/usr/bin/env python3
"""Bootstrap and run Kezek with nothing but Python 3.11+.

    python3 tasks.py demo    # the bot in this terminal, against the built-in sandbox
    python3 tasks.py test    # lint + the whole test suite
    python3 tasks.py bench   # the benchmarks (see docs/performance.md)
    python3 tasks.py sandbox # the voucher-service sandbox on http://127.0.0.1:8088/api/v1

The first run creates `.venv/` and installs the project with its test extras; later runs
reinstall only when pyproject.toml changed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".kezek-installed"


def _ensure_env() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 — this file must run on older Pythons to say so
        sys.exit("Kezek needs Python 3.11 or newer.")
    if not PY.exists():
        print("tasks: creating .venv …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text() != wanted:
        print("tasks: installing dependencies …", flush=True)
        pip = [str(PY), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "-e", f"{ROOT}[test]"], check=True, cwd=ROOT)
        STAMP.write_text(wanted)


def _run(*cmd: str) -> int:
    return subprocess.run(list(cmd), cwd=ROOT).returncode


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "bench", "sandbox", "lint"}:
        print(__doc__)
        return 2
    task, rest = argv[0], argv[1:]
    _ensure_env()
    if task == "demo":
        return _run(str(PY), "-m", "bot", "demo", *rest)
    if task == "sandbox":
        return _run(str(PY), "-m", "bot", "sandbox", *rest)
    if task == "bench":
        return _run(str(PY), "-m", "bench", *rest)
    lint = _run(str(PY), "-m", "ruff", "check", ".")
    if task == "lint" or lint != 0:
        return lint
    return _run(str(PY), "-m", "pytest", *rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
