import argparse
import os
import subprocess
import sys

import pytest

from finecliper.cli import build_parser, main


def _subcommand_paths(parser: argparse.ArgumentParser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _subcommand_paths(sub, (*prefix, name))


def test_console_script_lists_subcommands():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "finecliper", "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    for command in ("data", "synth", "model"):
        assert command in out


@pytest.mark.parametrize("path", list(_subcommand_paths(build_parser())))
def test_every_subcommand_has_help(path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*path, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: finecliper " + " ".join(path))


def test_user_errors_exit_cleanly_without_traceback(capsys, tmp_path):
    code = main(["data", "check", "dfew", str(tmp_path / "missing")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("finecliper: error:")
    assert "Traceback" not in err


def test_preset_help_names_every_preset(capsys):
    from finecliper.config import PRESET_DIR

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for preset in PRESET_DIR.glob("*.yaml"):
        assert preset.stem in help_text
