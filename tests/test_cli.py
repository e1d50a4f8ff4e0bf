import typer.main
from typer.testing import CliRunner

from pipeline.cli import app


def test_every_subcommand_has_help():
    group = typer.main.get_command(app)
    names = sorted(group.commands)
    assert {"synth", "validate", "index", "check-params"} <= set(names)
    runner = CliRunner()
    for name in names:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage" in result.output
        assert group.commands[name].help, f"{name} has no help text"


def test_bad_params_file_is_a_one_line_error(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("motion:\n  window_k: -3\n")
    result = CliRunner().invoke(app, ["check-params", "--params", str(bad)])
    assert result.exit_code == 2
    assert "motion.window_k = -3" in result.output


def test_synth_then_index_via_cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(
        "synth:\n  videos: 8\n  min_frames: 3\n  max_frames: 5\n  out_dir: ag\n"
        "dataset:\n  root: ag\n  index_dir: idx\n  val_fraction: 0.2\n"
    )
    runner = CliRunner()
    assert runner.invoke(app, ["synth", "ag", "--videos", "8"]).exit_code == 0
    result = runner.invoke(app, ["index"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "idx/summary.json").is_file() and (tmp_path / "idx/objects.parquet").is_file()
