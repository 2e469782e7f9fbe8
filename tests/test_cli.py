"""What `vade-run` shows around a run: its --help, shell completion, and a console free of library chatter."""

from __future__ import annotations

import logging

from tests.conftest import run_cli, vade_run
from vade_cli import cli
from vade_cli.text import decimal, one_line

COMMANDS = (
    "vade-run dataset=mnist device=cuda",
    "vade-run experiment=mnist seed=3",
    "vade-run -m seed=0,1,2,3,4",
    "vade-run resume=<run folder>",
)


def test_help_names_the_app_its_commands_groups_and_where_every_value_is(tmp_path):
    proc = vade_run(["--help"], cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout
    assert "vade-run: VaDE deep clustering" in text
    lines = [line.strip() for line in text.splitlines()]
    assert any(line.startswith("vade-run ") and "digits" in line for line in lines)  # the plain command
    for command in COMMANDS:
        assert any(line.startswith(command) for line in lines), command
    assert "dataset: digits, fashion_mnist" in text and "model: paper, small" in text  # $APP_CONFIG_GROUPS
    assert "vade-run --cfg job" in text
    assert "powered by hydra" not in text.lower()
    assert "== Config ==" not in text and "obs_variance" not in text  # no config dump
    assert not list(tmp_path.iterdir())  # help runs nothing and writes nothing


def test_shell_completion_install_prints_a_bash_script(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = run_cli(["--shell-completion", "install=bash"], monkeypatch)
    out = capsys.readouterr().out
    assert code == 0
    assert "hydra_bash_completion()" in out
    assert "complete -o nospace -o default -F hydra_bash_completion vade-run" in out


def test_third_party_info_stays_off_the_console_but_reaches_cli_log(tmp_path, monkeypatch, capsys):
    def chatty_run(cfg, run_dir, in_sweep=False):
        logging.getLogger("matplotlib.font_manager").info("generated new fontManager")
        logging.getLogger("numba.core.ssa").debug("numba debug chatter")
        logging.getLogger("PIL.PngImagePlugin").info("PIL info chatter")
        logging.getLogger("h5py").warning("an h5py warning the user should see")
        logging.getLogger("vade_cli.train").info("our own progress note")
        return {}

    monkeypatch.setattr(cli, "run_task", chatty_run)
    code = run_cli([f"hydra.run.dir={tmp_path / 'run'}"], monkeypatch)
    console = "".join(capsys.readouterr())
    assert code == 0, console
    assert "fontManager" not in console and "PIL info chatter" not in console and "numba" not in console
    assert "an h5py warning the user should see" in console
    assert "our own progress note" in console
    log = (tmp_path / "run" / "cli.log").read_text()
    assert "generated new fontManager" in log and "PIL info chatter" in log  # the file keeps INFO


def test_the_console_filter_passes_warnings_and_our_own_records():
    keep = cli.ThirdPartyAtWarning().filter

    def record(name: str, level: int) -> logging.LogRecord:
        return logging.LogRecord(name, level, __file__, 1, "message", None, None)

    assert not keep(record("matplotlib.font_manager", logging.INFO))
    assert not keep(record("numba", logging.DEBUG))
    assert keep(record("matplotlib", logging.WARNING)) and keep(record("PIL", logging.ERROR))
    assert keep(record("vade_cli.run", logging.INFO)) and keep(record("hydra.core", logging.INFO))
    assert keep(record("root", logging.INFO))
    assert not keep(record("vade_cli_fork", logging.INFO))  # a prefix of a name is not our package


def test_one_line_folds_hydra_messages_for_the_terminal_and_bounds_table_cells():
    hydra_message = (
        "Could not override 'dataset'.\nIn 'config': Could not find 'dataset/mnsit'\n\n"
        "Available options in 'dataset':\n\tdigits\n\tmnist\nfull_key: dataset\nobject_type=dict"
    )
    assert one_line(hydra_message) == (
        "Could not override 'dataset'.; In 'config': Could not find 'dataset/mnsit'; "
        "available options for dataset: digits mnist"
    )
    assert one_line("bad | value\nsecond  line", limit=300, sep=" ") == "bad | value second line"
    cut = one_line("x" * 50, limit=10, sep=" ")
    assert cut == "xxxxxxx..." and len(cut) == 10


def test_decimal_formats_numbers_only():
    assert decimal(0.123456) == "0.1235" and decimal(12.345, 1) == "12.3" and decimal(3, 2) == "3.00"
    assert decimal(None) == "-" and decimal(True) == "-" and decimal("0.5") == "-"


def test_a_folder_holding_another_configs_run_is_set_aside_not_resumed(tmp_path):
    """`hydra.run.dir` / `hydra.sweep.dir` reused with other settings: the earlier run's files move aside."""
    import json

    from omegaconf import OmegaConf

    from vade_cli import checkpoint

    run_dir = tmp_path / "sweep" / "0"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / "cli.log").write_text("this job's own log\n")
    checkpoint.atomic_write_json(run_dir / checkpoint.CONFIG, {"config": {"seed": 0}})
    (run_dir / checkpoint.LAST).write_bytes(b"seed 0's model")
    cli.set_aside_another_config(OmegaConf.create({"seed": 0}), run_dir)  # the same config: resumed as is
    assert (run_dir / checkpoint.LAST).is_file()
    cli.set_aside_another_config(OmegaConf.create({"seed": 2}), run_dir)
    aside = tmp_path / "sweep" / checkpoint.REPLACED_DIR / "0-0"
    assert sorted(p.name for p in run_dir.iterdir()) == [".hydra", "cli.log"]
    assert (aside / checkpoint.LAST).read_bytes() == b"seed 0's model"
    assert json.loads((aside / checkpoint.CONFIG).read_text())["config"] == {"seed": 0}
