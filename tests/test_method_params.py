"""A method's settings live in its own file (``Params``): the configuration reads them there, and
whatever was saved before they moved (runs, tuned files, benchmark cells and their hashes) reads
the same."""
import dataclasses
import json
from pathlib import Path

import pytest

from vsb2net.comparison.cells import settings_hash
from vsb2net.config import SHARED_MODEL_KEYS, ModelConfig, build_config, saved_config_from_dict
from vsb2net.errors import VsbError
from vsb2net.models import METHODS

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
#: methods whose definition changed after their committed cells were computed: their cells are
#: stale on purpose (the benchmark recomputes them), so their hashes must differ
CHANGED_SINCE_CELLS: dict[str, str] = {}

#: the model section a run saved before methods owned their settings: every method's option
OLD_MODEL = {"method": "dsh", "backbone": "auto", "backbone_weights": "imagenet", "finetune_blocks": 0, "bits": 32,
             "feature_dim": 256, "semantic_hidden": 256, "alpha": 30.0, "w_rec": 1.0, "w_rel": 0.1, "w_dis": 0.1,
             "w_q": 0.01, "w_bal": 0.0, "w_sim": 0.0, "semantic_noise": 0.0, "lle_neighbors": 3, "lle_reg": 0.001,
             "cls_semantic_smoothing": 0.0, "dis_margin": 0.0, "rec_target": "batch", "rec_detach_target": True,
             "center_semantics": True, "class_span": "seen", "class_codes": "relation", "margin": 2.0,
             "cls_loss": "prototype", "code_norm": False}


def test_model_config_holds_only_what_every_method_shares():
    fields = [f.name for f in dataclasses.fields(ModelConfig)]
    assert fields == [*SHARED_MODEL_KEYS, "params"]
    for name in METHODS.names():
        own = {f.name for f in dataclasses.fields(METHODS.get(name).Params)}
        assert not own & set(SHARED_MODEL_KEYS), name


def test_every_committed_cell_hashes_as_it_was_stored():
    """Moving the settings into the methods' files recomputes no cell: each cell's stored
    configuration, read back, hashes to the hash stored with it (renamed parameters hash under
    their old names, later additions at their old values are left out)."""
    cells = sorted(RESULTS.glob("**/cells/*.json"))  # v1/: the first plan's cells BACKBONES.md reads
    if not cells:
        pytest.skip("no committed cells")
    wrong, stale = [], 0
    for path in cells:
        cell = json.loads(path.read_text())
        same = settings_hash(cell["config"]) == cell["config_hash"]
        if cell["config"]["model"]["method"] in CHANGED_SINCE_CELLS:
            stale += not same
        elif not same:
            wrong.append(path.name)
    assert not wrong, f"{len(wrong)} of {len(cells)} cells hash differently now, e.g. {wrong[:3]}"
    assert stale == sum(json.loads(p.read_text())["config"]["model"]["method"] in CHANGED_SINCE_CELLS
                        for p in cells)


def test_a_run_saved_with_every_methods_options_loads_into_its_methods_parameters():
    cfg = saved_config_from_dict({"model": dict(OLD_MODEL)})
    assert cfg.model.method == "dsh" and cfg.model.bits == 32
    # the shared 'margin' is DSH's margin_k; VSB2-Net's options, which DSH never read, are dropped
    assert dataclasses.asdict(cfg.model.params) == {"margin_k": 2.0, "w_q": 0.01}
    vsb = saved_config_from_dict({"model": {**OLD_MODEL, "method": "vsb2net", "margin": 0.3}})
    assert vsb.model.params.cos_margin == 0.3 and vsb.model.params.w_rec == 1.0
    # a parameter added since a run was saved takes the value that reproduces that run
    old = saved_config_from_dict({"model": {"method": "dsh", "bits": 16}})
    assert old.model.params.margin_k == 1.0 and ModelConfig.of("dsh").params.margin_k == 2.0


def test_old_names_set_the_renamed_parameter_and_a_setting_of_another_method_is_refused():
    assert build_config(None, ["model.method=dsh", "model.margin=3"]).model.params.margin_k == 3.0
    assert build_config(None, ["model.method=orthohash", "model.margin=0.3"]).model.params.cos_margin == 0.3
    assert build_config(None, ["model.method=dpn", "model.polar_margin=0.5"]).model.params.polar_margin == 0.5
    with pytest.raises(VsbError, match=r"unknown key\(s\) w_rec for method dsh.*margin_k, w_q"):
        build_config(None, ["model.method=dsh", "model.w_rec=3"])
    with pytest.raises(VsbError, match="did you mean w_rec"):
        build_config(None, ["model.w_recc=3"])
    with pytest.raises(VsbError, match="model.rec_target = 'pixels': use 'batch' or 'l2' or 'input'"):
        build_config(None, ["model.rec_target=pixels"])
    with pytest.raises(VsbError, match="model.w_q = -1.0: loss weights must be >= 0"):
        build_config(None, ["model.method=csq", "model.w_q=-1"])


def test_the_flat_section_round_trips_and_params_belong_to_their_method():
    cfg = build_config(None, ["model.method=orthohash", "model.alpha=4", "model.bits=16"])
    flat = cfg.model.to_dict()
    assert flat == {"method": "orthohash", "backbone": "auto", "backbone_weights": "imagenet", "finetune_blocks": 0,
                    "bits": 16, "feature_dim": 256, "code_layer": "center", "alpha": 4.0, "cos_margin": 0.2}
    assert saved_config_from_dict(cfg.to_dict()) == cfg
    with pytest.raises(TypeError, match="do not belong to method 'dsh'"):
        dataclasses.replace(cfg.model, method="dsh")
    assert dataclasses.replace(cfg.model, method="dsh", params=None).params == ModelConfig.of("dsh").params


def test_no_search_space_holds_a_query_only_setting_and_query_only_settings_leave_image_codes_alone():
    """The tuning scores pseudo-unseen image mAP: a setting that only changes how class-name queries
    are coded cannot be chosen by it (the first Optuna tuning drew VSB2-Net's class_codes at random)."""
    import numpy as np
    import torch

    from vsb2net.models.base import encode
    from vsb2net.pipeline import fit_method, prepare

    for name in METHODS.names():
        cls = METHODS.get(name)
        assert not set(cls.search) & cls.Params.query_only, name
    codes = []
    for value in ("relation", "semantic"):
        cfg = build_config(None, ["model.method=vsb2net", f"model.class_codes={value}", "data.max_per_class=30",
                                  "model.bits=16", "train.progress=false", "train.epochs=1"])
        prep = prepare(cfg)
        model, _ = fit_method(cfg, prep, prep.split, 1, torch.device("cpu"), "query-only check")
        codes.append(encode(model.hash_images, prep.x[prep.split.database], torch.device("cpu")))
    np.testing.assert_array_equal(codes[0], codes[1])
