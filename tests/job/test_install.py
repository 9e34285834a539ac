"""`pip install .` as a user does it (a wheel, not the editable install of the test venv): the
commands land on PATH and find what the project ships beside its packages."""

from __future__ import annotations

import site
import subprocess
import venv
from pathlib import Path

import pytest

from helpers.flinkjob import REPO

pytestmark = pytest.mark.slow


def test_pip_install_puts_both_commands_on_path_with_their_files(tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # The dependencies (PyFlink is 300 MB) come from this venv, without its editable install of the
    # project: a path in a .pth file is put on sys.path, the .pth files in it are not run.
    (Path(site.getsitepackages([str(env_dir)])[0]) / "deps.pth").write_text(
        site.getsitepackages()[0] + "\n"
    )
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", str(REPO)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    for command, first_option in (("binance-flink", "--symbols"), ("binance-flink-sim", "--host")):
        run = subprocess.run(
            [env_dir / "bin" / command, "--help"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        assert run.stdout.startswith(f"usage: {command} ") and first_option in run.stdout
    where = subprocess.run(
        [
            python,
            "-c",
            "import connectors, connectors.shipped as s;"
            "print(connectors.__file__);"
            "print(s.shipped('conf/config.yaml'));"
            "print(s.shipped('data/captures/btcusdt_20240809.gz'))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=True,
    ).stdout.split()
    shipped_root = env_dir / "share" / "binance-flink"
    assert Path(where[0]).is_relative_to(env_dir)  # the wheel's package, not the repo's
    assert [Path(p) for p in where[1:]] == [
        shipped_root / "conf" / "config.yaml",
        shipped_root / "data" / "captures" / "btcusdt_20240809.gz",
    ]
    assert (Path(where[0]).parent / "py.typed").is_file()
