"""The method registry is the one place that knows the methods: a method in a new file, with a
setting of its own, is run, tuned and benchmarked with no other edit, and what each method
declares is checked when it registers."""
import importlib.util
import json
import sys

import pytest
import yaml

from vsb2net.cli import main
from vsb2net.config import ModelConfig, build_config
from vsb2net.errors import VsbError
from vsb2net.models import METHODS, create_method, variants
from vsb2net.models.base import FAMILIES, HashingMethod, check_declaration
from vsb2net.space import Float

#: a whole method file with a parameter of its own, as a contributor would write it
NEW_METHOD = '''"""Gain hash: CSQ's centres with a gain on the hash layer (a test method)."""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from ..config import MethodParams
from ..space import Float
from .backbones import CodebookHead
from .base import LR_SPACE, METHODS


@METHODS.register("gainhash", help="hash centres with a gain on the hash layer (test)")
class GainHash(CodebookHead):
    family = "pointwise"
    paper = "(a test method)"

    @dataclass
    class Params(MethodParams):
        #: multiplies the hash layer's output before the tanh
        gain: float = 1.0

    search = {"gain": Float(0.5, 2.0), "train.lr": LR_SPACE}
    reference = {"gain": 1.0, "train.lr": 2e-3}

    def __init__(self, cfg, in_shape, semantic_dim):
        super().__init__(cfg, in_shape)

    def training_loss(self, x, y, ctx):
        u = (self.hash_outputs(x) * self.params.gain).tanh()
        loss = F.binary_cross_entropy((u + 1) / 2, (self.target_codes(y) + 1) / 2)
        return loss, {"central": float(loss.detach())}
'''


@pytest.fixture
def new_method(tmp_path):
    """NEW_METHOD as a new file, imported as a module of the package (what one file plus its import
    line in models/__init__.py does)."""
    path = tmp_path / "gainhash.py"
    path.write_text(NEW_METHOD)
    spec = importlib.util.spec_from_file_location("vsb2net.models.gainhash", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield "gainhash"
    METHODS.unregister("gainhash")
    sys.modules.pop(spec.name, None)


def test_a_method_with_a_setting_of_its_own_in_a_new_file_is_run_tuned_and_benchmarked(new_method, tmp_path,
                                                                                      capsys):
    pytest.importorskip("animal_mnist", reason="animal-mnist not installed")
    assert new_method in variants()
    small = ["--bits", "16", "--max-per-class", "30", "--set", "model.feature_dim=16", "--no-progress"]
    assert main(["run", "--method", new_method, "--epochs", "1", *small, "--set", "model.gain=1.5",
                 "--set", "train.select_epochs=false", "--out", str(tmp_path / "runs"), "--name", "g"]) == 0
    saved = yaml.safe_load((tmp_path / "runs" / "g" / "config.yaml").read_text())
    assert saved["model"]["gain"] == 1.5 and "alpha" not in saved["model"]

    tuned = tmp_path / "tuned.yaml"
    assert main(["tune", "--methods", new_method, "--max-epochs", "1", "--trials", "2", *small,
                 "--out", str(tuned)]) == 0
    doc = yaml.safe_load(tuned.read_text())
    assert set(doc["methods"]) == {new_method} and len(doc["trials"]) == 2
    assert doc["trials"][0]["params"] == {"model.gain": 1.0, "train.lr": 2e-3}  # the reference first
    assert all(0.5 <= t["params"]["model.gain"] <= 2.0 for t in doc["trials"])
    assert doc["search"]["spaces"][new_method]["model.gain"] == "[0.5, 2]"

    out = tmp_path / "bench"
    assert main(["benchmark", "--methods", f"{new_method},random", "--bits", "16", "--splits", "1",
                 "--max-per-class", "30", "--tuned", str(tuned), "--set", "model.gain=1.25", "--out", str(out),
                 "--no-progress"]) == 0
    cell = json.loads((out / "cells" / f"{new_method}_16bits_split0.json").read_text())
    assert cell["method"] == new_method and cell["config"]["model"]["gain"] == 1.25
    assert set(cell["protocols"]) == {"seen@seen", "seen@all", "unseen@unseen", "unseen@all"}
    assert new_method in (out / "table.md").read_text()
    capsys.readouterr()
    main(["methods"])
    assert "gain=1.0" in capsys.readouterr().out
    with pytest.raises(VsbError, match=r"unknown key\(s\) gain for method csq"):
        build_config(None, ["model.method=csq", "model.gain=2"])


def test_every_method_declares_family_paper_and_a_search_space_of_its_own_settings():
    assert len(METHODS.names()) >= 14
    for name in METHODS.names():
        cls = METHODS.get(name)
        check_declaration(cls)  # what registration checked, once more for the record
        assert cls.family in FAMILIES and cls.paper
        model = create_method(name, ModelConfig.of(name, bits=16, feature_dim=16), (1, 28, 28), 8)
        assert model.params == ModelConfig.of(name).params  # its defaults, from its own file
        assert isinstance(model, HashingMethod)


def test_a_declaration_that_searches_a_setting_the_method_does_not_have_is_refused():
    class Bad(HashingMethod):
        family, paper = "pointwise", "a paper"
        search = {"margin": Float(0.0, 1.0)}

    with pytest.raises(TypeError, match="'margin' is neither a parameter"):
        METHODS.register("bad")(Bad)
    assert "bad" not in METHODS

    class OutOfRange(HashingMethod):
        family, paper = "pointwise", "a paper"
        reference = {"train.lr": 1.0}

    with pytest.raises(TypeError, match="outside its search space"):
        METHODS.register("outofrange")(OutOfRange)

    class NoFamily(HashingMethod):
        paper = "a paper"

    with pytest.raises(TypeError, match="family"):
        METHODS.register("nofamily")(NoFamily)


def test_variants_come_from_the_registry_with_each_methods_ablations():
    v = variants()
    assert list(v)[0] == "vsb2net"
    for name in METHODS.names():
        assert v[name] == (name, {})
        for suffix, overrides in METHODS.get(name).ablations.items():
            assert v[f"{name}-{suffix}"] == (name, overrides)
    assert v["vsb2net-no-rec"] == ("vsb2net", {"model.w_rec": 0})
