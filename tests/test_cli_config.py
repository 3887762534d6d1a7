"""The command line's configuration: one key=value parser, --tuned files, registry-driven names, and
a parser that builds without importing torch.  Fast: nothing here trains."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from vsb2net.cli import _config_from_args, _resume_from_args, build_parser, main
from vsb2net.comparison.tuned import TUNED_DIR
from vsb2net.config import apply_overrides, build_config, parse_overrides
from vsb2net.errors import VsbError

ROOT = Path(__file__).resolve().parents[1]
TUNED = TUNED_DIR / "animal-mnist.yaml"


def config(*argv: str, command: str = "run"):
    return _config_from_args(build_parser().parse_args([command, *argv]))


# --- one key=value parser ---------------------------------------------------------------------

def test_parse_overrides_keeps_order_and_the_last_value():
    assert parse_overrides([" model.bits = 64", "name=x=y", "model.bits=16", "data.unseen=cat, dog"]) == {
        "name": "x=y", "model.bits": "16", "data.unseen": "cat, dog"}
    assert list(parse_overrides(["a.b=1", "c.d=2", "a.b=3"])) == ["c.d", "a.b"]


@pytest.mark.parametrize("item", ["model.bits", "=3", " =3", "model.=3", ".bits=3", "model..bits=3"])
def test_malformed_override_is_one_clear_error(item):
    with pytest.raises(VsbError, match=r"write it as section\.key=value, e\.g\. model\.bits=64\.$"):
        parse_overrides([item])
    with pytest.raises(VsbError, match="section.key=value"):
        build_config(None, [item])


def test_strings_and_mappings_apply_alike():
    assert apply_overrides({}, ["model.bits=16", "name=r"]) == apply_overrides({}, {"model.bits": "16", "name": "r"})
    assert build_config(None, {"model.bits": 48, "train.select_epochs": False}).model.bits == 48


def test_flags_win_over_set_and_set_over_config_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  bits: 48\n  w_rel: 0.5\ntrain:\n  epochs: 4\n")
    cfg = config("--config", str(path), "--set", "model.bits=16", "--set", "model.w_rel=0", "--bits", "64",
                 "--no-progress", "--unseen", "Cat,Dog")
    assert (cfg.model.bits, cfg.model.params.w_rel, cfg.train.epochs) == (64, 0.0, 4)
    assert cfg.train.progress is False and cfg.data.unseen == ["Cat", "Dog"]


def test_top_level_unknown_key_names_no_empty_section():
    with pytest.raises(VsbError, match=r"^unknown key\(s\) bogus; known keys: name, out_dir"):
        config("--set", "bogus=1")


# --- --tuned ----------------------------------------------------------------------------------

def _tuned_doc() -> dict:
    return yaml.safe_load(TUNED.read_text())


def test_tuned_settings_of_the_run_method_are_the_starting_configuration():
    doc = _tuned_doc()
    cfg = config("--tuned", str(TUNED))
    settings = doc["methods"]["vsb2net"]
    assert cfg.model.method == "vsb2net" and cfg.data.dataset == doc["dataset"]
    assert cfg.model.params.w_rec == settings["model.w_rec"] and cfg.train.epochs == settings["train.epochs"]
    # the tuned epoch count is the maximum; run still selects on the validation protocol
    assert cfg.train.select_epochs is True
    assert config("--tuned", str(TUNED), "--set", "train.select_epochs=false").train.select_epochs is False
    # another method: its own settings, none of vsb2net's
    csq = config("--tuned", str(TUNED), "--method", "csq")
    assert csq.model.params.w_q == doc["methods"]["csq"]["model.w_q"]
    assert csq.train.epochs == doc["methods"]["csq"]["train.epochs"] and not hasattr(csq.model.params, 'w_rec')
    assert config("--tuned", str(TUNED), "--set", "model.method=csq").train.epochs == csq.train.epochs


def test_config_set_and_flags_win_over_tuned(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  w_rec: 7\n")
    cfg = config("--tuned", str(TUNED), "--config", str(path), "--set", "train.epochs=2", "--dataset", "mnist")
    assert (cfg.model.params.w_rec, cfg.train.epochs, cfg.data.dataset) == (7.0, 2, "mnist")
    assert config("--tuned", str(TUNED), "--epochs", "5", command="train").train.epochs == 5


def test_a_tuned_file_given_as_config_is_read_as_tuned():
    assert config("--config", str(TUNED)) == config("--tuned", str(TUNED))
    from vsb2net.comparison.tuned import tuned_config

    assert tuned_config(TUNED, ["model.method=sitnet"]) == config("--tuned", str(TUNED), "--method", "sitnet")
    with pytest.raises(VsbError, match="give only one of them"):
        config("--config", str(TUNED), "--tuned", str(TUNED))


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.mark.parametrize("name,text,match", [
    ("missing.yaml", None, "tuned file .*missing.yaml does not exist"),
    ("bad.yaml", "methods: [1, 2\n", "tuned file .*bad.yaml could not be parsed"),
    ("list.yaml", "- 1\n- 2\n", "the top level must be a mapping of keys"),
    ("none.yaml", "dataset: animal-mnist\n", "has no 'methods' mapping"),
    ("empty.yaml", "methods: {}\n", "has no 'methods' mapping"),
    ("flat.yaml", "methods:\n  vsb2net: 3\n", "methods.vsb2net must be a mapping"),
    ("typo.yaml", "methods:\n  vsb2net:\n    model.bakbone: cnn28s\n",
     r"unknown key\(s\) model.bakbone \(did you mean model.backbone\?\)"),
    ("section.yaml", "methods:\n  vsb2net:\n    model: 3\n", r"unknown key\(s\) model;"),
    ("type.yaml", "methods:\n  vsb2net:\n    train.epochs: many\n", "methods.vsb2net: train.epochs = 'many': expected"),
    ("switch.yaml", "methods:\n  vsb2net:\n    model.method: csq\n", "cannot switch to another method"),
    ("other.yaml", "methods:\n  csq:\n    model.w_q: 0.1\n", "has no settings for method 'vsb2net'; it has csq"),
])
def test_bad_tuned_files_are_one_clear_error(tmp_path, name, text, match):
    path = str(tmp_path / name) if text is None else _write(tmp_path, name, text)
    with pytest.raises(VsbError, match=match):
        config("--tuned", path)


def test_bad_tuned_file_on_the_command_line_is_one_line(tmp_path, capsys):
    path = _write(tmp_path, "bad.yaml", "methods: [1, 2\n")
    assert main(["run", "--tuned", path, "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vsb2net: error: tuned file") and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_unknown_method_with_tuned_file_lists_the_methods():
    with pytest.raises(VsbError, match="unknown method 'nosuch'; known: .*vsb2net"):
        config("--tuned", str(TUNED), "--method", "nosuch")


def test_resume_refuses_a_tuned_file(tmp_path):
    args = build_parser().parse_args(["train", "--resume", str(tmp_path), "--tuned", str(TUNED)])
    with pytest.raises(VsbError, match="drop --tuned"):
        _resume_from_args(args)


def test_help_says_what_a_tuned_file_supplies(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--tuned FILE" in text and "train.select_epochs=false" in text and "`vsb2net methods`" in text


# --- names from the registries ----------------------------------------------------------------

def test_methods_and_backbones_commands_list_the_registries(capsys):
    from vsb2net.models import BACKBONES, METHODS

    assert main(["methods"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in METHODS.names():
        at = next(i for i, line in enumerate(lines) if line.split()[:1] == [name])
        row = lines[at].split()
        assert row[1] == METHODS.get(name).family
        assert row[2] == ("yes" if METHODS.get(name).codes_classes else "no")
        assert " ".join(row[3:]) == " ".join(METHODS.help(name).split())
        assert lines[at + 1].split() == ["paper:", *METHODS.get(name).paper.split()]
    assert main(["backbones"]) == 0
    out = capsys.readouterr().out
    assert all(name in out and BACKBONES.help(name) in out for name in BACKBONES.names())


def test_index_backends_come_from_the_registry(capsys):
    from vsb2net.index import backend_names
    from vsb2net.index.backend import get_backend
    from vsb2net.index.cli import _backend_params, search_params

    parser = build_parser()
    for name in backend_names():
        assert parser.parse_args(["index", "build", "RUN", "--codes", "c.npy", "--backend", name]).backend == name
    with pytest.raises(SystemExit):
        parser.parse_args(["index", "build", "RUN", "--codes", "c.npy", "--backend", "annoy"])
    err = capsys.readouterr().err
    assert "invalid choice: 'annoy'" in err and all(repr(name) in err for name in backend_names())

    def params(backend, *flags):
        args = parser.parse_args(["index", "build", "RUN", "--codes", "c.npy", "--backend", backend, *flags])
        return _backend_params(args, Path("x.vsbidx"), "x")

    assert params("faiss-ivf", "--nlist", "4", "--nprobe", "2") == {"nlist": 4, "nprobe": 2}
    assert params("faiss-mih", "--nhash", "2") == {"nhash": 2}
    with pytest.raises(VsbError, match="do not apply to backend faiss-flat; it takes none"):
        params("faiss-flat", "--nlist", "4")
    with pytest.raises(VsbError, match="it takes --nlist --nprobe"):
        params("faiss-ivf", "--nhash", "2")
    with pytest.raises(VsbError, match="--milvus-uri do not apply to backend flat"):
        params("flat", "--milvus-uri", "m.db")
    # every declared parameter is a flag of `index build`, the search-time ones of `search` and `serve`
    for name in backend_names():
        for p in get_backend(name).parameters:
            given = [p.option] + ([] if p.kind is bool else [p.choices[0] if p.choices else "3"])
            value = True if p.kind is bool else (p.choices[0] if p.choices else p.kind("3"))
            args = parser.parse_args(["index", "build", "RUN", "--codes", "c.npy", "--backend", name, *given])
            assert _backend_params(args, Path("x.vsbidx"), "x")[p.name] == value
            for command in (["search", "RUN", "I", "--code", "00"], ["serve", "RUN", "I"]):
                if p.search_time:
                    assert search_params(parser.parse_args([*command, *given]))[p.name] == value
                else:
                    with pytest.raises(SystemExit):
                        parser.parse_args([*command, *given])
    capsys.readouterr()


# --- fast start -------------------------------------------------------------------------------

HEAVY = ("torch", "faiss", "pymilvus", "vsb2net.models", "vsb2net.pipeline", "vsb2net.comparison.cells",
         "vsb2net.data", "vsb2net.evaluation.model_eval", "fastapi", "starlette", "uvicorn", "vsb2net.serve.app",
         "vsb2net.serve.service")


def test_parser_and_every_help_import_nothing_heavy():
    script = textwrap.dedent(f"""
        import contextlib, io, sys
        from vsb2net.cli import build_parser
        commands = [[], ["run"], ["train"], ["evaluate"], ["datasets"], ["methods"], ["backbones"],
                    ["benchmark"], ["tune"], ["index"], ["index", "build"], ["index", "info"], ["search"],
                    ["serve"]]
        for cmd in commands:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                try:
                    build_parser().parse_args([*cmd, "--help"])
                except SystemExit as exc:
                    assert exc.code == 0, cmd
            assert out.getvalue().startswith("usage: vsb2net"), cmd
        heavy = sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in {HEAVY!r}))
        print(" ".join(heavy))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"building the parser imported {proc.stdout.strip()}"


def test_module_help_has_no_torch_in_its_import_trace():
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "vsb2net", "--help"],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "usage: vsb2net" in proc.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "vsb2net.cli" in imported and not {"torch", "faiss", "vsb2net.models", "fastapi", "uvicorn"} & imported


def test_tuned_auto_takes_the_committed_file_of_the_dataset(tmp_path, monkeypatch):
    import yaml

    from vsb2net import config
    from vsb2net.comparison import tuned

    (tmp_path / "animal-mnist.yaml").write_text(yaml.safe_dump(
        {"dataset": "animal-mnist", "methods": {"vsb2net": {"model.w_rec": 7.0, "train.epochs": 4}}}))
    monkeypatch.setattr(tuned, "TUNED_DIR", tmp_path)
    cfg = tuned.tuned_config(None, [], tuned="auto")
    assert cfg.model.params.w_rec == 7.0 and cfg.train.epochs == 4
    # a dataset without a committed file keeps the defaults; flags still win over the file
    default = config.ModelConfig().params.w_rec
    assert tuned.tuned_config(None, ["data.dataset=mnist"], tuned="auto").model.params.w_rec == default
    assert tuned.tuned_config(None, ["model.w_rec=2"], tuned="auto").model.params.w_rec == 2.0
