"""The method registry is the one place that knows the methods: a method in a new file is tuned and
benchmarked with no other edit, and what each method declares is checked when it registers."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import yaml

from vsb2net.cli import main
from vsb2net.config import ModelConfig
from vsb2net.models import METHODS, create_method, variants
from vsb2net.models.base import FAMILIES, HashingMethod, check_declaration

MODELS = Path(__file__).resolve().parent.parent / "src" / "vsb2net" / "models"


@pytest.fixture
def copied_method(tmp_path):
    """dpn.py copied into a new file under another name, imported as a module of the package (what
    one file plus its import line in models/__init__.py does)."""
    text = (MODELS / "dpn.py").read_text().replace('@METHODS.register("dpn"', '@METHODS.register("copied"')
    path = tmp_path / "copied.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("vsb2net.models.copied", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield "copied"
    METHODS.unregister("copied")
    sys.modules.pop(spec.name, None)


def test_a_method_in_a_new_file_is_tuned_and_benchmarked_with_no_other_edit(copied_method, tmp_path, capsys):
    pytest.importorskip("animal_mnist", reason="animal-mnist not installed")
    assert copied_method in variants()
    tuned = tmp_path / "tuned.yaml"
    assert main(["tune", "--methods", copied_method, "--bits", "16", "--max-per-class", "30", "--max-epochs", "1",
                 "--set", "model.feature_dim=16", "--out", str(tuned), "--no-progress"]) == 0
    doc = yaml.safe_load(tuned.read_text())
    assert set(doc["methods"]) == {copied_method}
    assert {r["params"]["model.margin"] for r in doc["grid"]} == {0.5, 1.0}  # the copied class's grid
    out = tmp_path / "bench"
    assert main(["benchmark", "--methods", f"{copied_method},random", "--bits", "16", "--splits", "1",
                 "--max-per-class", "30", "--tuned", str(tuned), "--out", str(out), "--no-progress"]) == 0
    cell = json.loads((out / "cells" / f"{copied_method}_16bits_split0.json").read_text())
    assert cell["method"] == copied_method and cell["config"]["model"]["margin"] in (0.5, 1.0)
    assert set(cell["protocols"]) == {"seen@seen", "seen@all", "unseen@unseen", "unseen@all"}
    assert copied_method in (out / "table.md").read_text()
    capsys.readouterr()
    main(["methods"])
    assert copied_method in capsys.readouterr().out


def test_every_method_declares_family_paper_and_a_grid_of_options_it_reads():
    assert len(METHODS.names()) >= 14
    for name in METHODS.names():
        cls = METHODS.get(name)
        check_declaration(cls)  # what registration checked, once more for the record
        assert cls.family in FAMILIES and cls.paper
        model = create_method(name, ModelConfig(method=name, bits=16, feature_dim=16), (1, 28, 28), 8)
        assert isinstance(model, HashingMethod)


def test_a_declaration_that_names_an_option_the_method_does_not_read_is_refused():
    class Bad(HashingMethod):
        family, paper, options = "pointwise", "a paper", frozenset({"w_q"})
        grid = {"model.margin": [1.0]}

    with pytest.raises(TypeError, match="model.margin"):
        METHODS.register("bad")(Bad)
    assert "bad" not in METHODS

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
