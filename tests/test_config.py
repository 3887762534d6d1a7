import pytest

from vsb2net.config import RunConfig, build_config, config_from_dict
from vsb2net.errors import VsbError


def test_defaults_and_overrides(tmp_path):
    cfg = build_config(None, ["model.bits=64", "data.unseen=cat, dog", "data.max_per_class=none",
                              "train.select_epochs=false", "model.w_rel=0"])
    assert cfg.model.bits == 64 and cfg.data.unseen == ["cat", "dog"]
    assert cfg.data.max_per_class is None and cfg.train.select_epochs is False and cfg.model.params.w_rel == 0.0


@pytest.mark.parametrize("suffix,text", [
    (".yaml", "model:\n  bits: 48\ntrain:\n  epochs: 3\n"),
    (".toml", "[model]\nbits = 48\n[train]\nepochs = 3\n"),
])
def test_file_then_flags(tmp_path, suffix, text):
    path = tmp_path / f"c{suffix}"
    path.write_text(text)
    cfg = build_config(path, ["train.epochs=5"])
    assert cfg.model.bits == 48 and cfg.train.epochs == 5


def test_roundtrip_through_dict():
    cfg = build_config(None, ["model.bits=16", "eval.topk=10,20"])
    assert config_from_dict(cfg.to_dict()) == cfg
    assert cfg.eval.topk == [10, 20]


@pytest.mark.parametrize("override,match", [
    ("model.bits=12", "multiple of 8"),
    ("model.bitz=16", "unknown key"),
    ("model.bits=abc", "expected a value of type int"),
    ("model.w_rec=-1", ">= 0"),
    ("model.class_span=all", "class_span"),
    ("nonsense", "section.key=value"),
])
def test_bad_values_are_clear_errors(override, match):
    with pytest.raises(VsbError, match=match):
        build_config(None, [override])


def test_bad_files(tmp_path):
    with pytest.raises(VsbError, match="does not exist"):
        build_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nbits=")
    with pytest.raises(VsbError, match="could not be parsed"):
        build_config(bad)
    evil = tmp_path / "evil.yaml"
    evil.write_text("model: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(VsbError):
        build_config(evil)
    assert isinstance(RunConfig(), RunConfig)
