"""`hrnet list` and `hrnet info` (the CLI mirrors create_model / model_complexity)."""

from __future__ import annotations

import json
import subprocess
import sys

from hrnet.cli import main


def test_info_json(capsys):
    assert main(["info", "pose_hrnet_w32", "--input-size", "256", "192", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert isinstance(info["params"], int) and info["params"] == 28_536_113
    assert round(info["gflops"], 1) == 7.1
    assert info["gmacs"] == info["macs"] / 1e9


def test_info_default_size_and_text(capsys):
    assert main(["info", "seg_hrnet_w18_small_v1"]) == 0
    out = capsys.readouterr().out
    assert "1024x2048" in out and "GFLOPs" in out


def test_list_and_unknown_name(capsys):
    assert main(["list", "seg"]) == 0
    assert "seg_hrnet_w48" in capsys.readouterr().out
    assert main(["info", "hrnet_w18_smal"]) == 2
    assert "did you mean" in capsys.readouterr().err


def test_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "hrnet.cli", "info", "hrnet_w18", "--json"], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout)["params"] == 21_299_004
