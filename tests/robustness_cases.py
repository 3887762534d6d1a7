"""Bad inputs for every file and option the command line reads, and what each must produce.

Shared by tests/test_robustness.py (which runs every case) and benchmarks/robustness_table.py
(which writes docs/ROBUSTNESS.md from the same cases, so the table shows the messages users see).

Every case builds its files under a fresh directory, which is the working directory while the
command runs, so the messages hold short relative paths.  A case passes when the command exits
non-zero with one paragraph on stderr that contains ``expect``, prints no traceback, and leaves
no output file behind (the ``out`` directory stays empty, an existing run directory unchanged).
"""
from __future__ import annotations

import contextlib
import gzip
import io
import os
import pickle
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# GloVe class vectors: the search cases look up words outside the run's classes
TINY = ["--max-per-class", "10", "--epochs", "1", "--bits", "16", "--no-progress",
        "--set", "model.feature_dim=16", "--set", "train.select_epochs=false", "--set", "data.class_vectors=glove"]
# where the cases' commands write; must stay empty
OUT = ["--out", "out", "--name", "r"]
#: a file every refused-code case would create if its payload ran
PWNED = "PWNED"


@dataclass
class Case:
    id: str
    input: str
    case: str
    build: Callable[[Path, Path], list[str]]     # (case dir, sources dir) -> argv
    expect: str
    #: run directories that must come out unchanged (relative to the case dir)
    keep: list[str] = field(default_factory=list)


class _Evil:
    """Unpickling this creates the file PWNED: a stand-in for any code an attacker could run."""

    def __reduce__(self):
        return (exec, (f"open({PWNED!r}, 'w').close()",))


# --- sources: real run directories the checkpoint cases corrupt ------------------------------------

def build_sources(base: Path) -> Path:
    """A finished 16-bit run, a finished 32-bit run and an interrupted run under ``base``."""
    from vsb2net import run as runfiles
    from vsb2net.cli import main
    from vsb2net.run import RESUME

    base.mkdir(parents=True, exist_ok=True)
    with _quiet():
        for name, bits in (("run16", "16"), ("run32", "32")):
            if not (base / name / "checkpoint.pt").is_file():
                argv = ["train", *TINY, "--out", str(base), "--name", name]
                argv[argv.index("--bits") + 1] = bits
                assert main(argv) == 0, name
        if not (base / "run16b").is_dir():
            # the same run with other weights: a model whose codes are not comparable
            import torch

            shutil.copytree(base / "run16", base / "run16b")
            payload = torch.load(base / "run16b" / "checkpoint.pt", weights_only=True)
            payload["state_dict"]["hash_head.weight"] *= -1
            torch.save(payload, base / "run16b" / "checkpoint.pt")
        for run, index in (("run16", "db16"), ("run32", "db32"), ("run16b", "db16b")):
            if not (base / f"{index}.vsbidx").is_file():
                assert main(["index", "build", str(base / run), "--dataset", "animal-mnist",
                             "-o", str(base / f"{index}.vsbidx")]) == 0
        if not (base / "stopped" / RESUME).is_file():
            # stop after the first saved epoch, as Ctrl-C would
            real = runfiles.write_resume_state

            def save_then_stop(*args, **kwargs):
                real(*args, **kwargs)
                raise KeyboardInterrupt

            runfiles.write_resume_state = save_then_stop
            try:
                assert main(["train", *TINY, "--epochs", "3", "--out", str(base), "--name", "stopped"]) == 130
            finally:
                runfiles.write_resume_state = real
    return base


@contextlib.contextmanager
def _quiet():
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
        yield


def _copy_run(src: Path, d: Path, name: str = "run") -> Path:
    shutil.copytree(src, d / name)
    return d / name


# --- dataset files ------------------------------------------------------------------------------

def _mnist_dir(d: Path, **override) -> Path:
    """Four small IDX files in the MNIST layout (3 images per class per split) under d/mnist."""
    from vsb2net.data.idx import write_idx

    root = d / "mnist"
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("t10k", 30)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        write_idx(root / f"{split}-images-idx3-ubyte.gz", override.get(f"{split}-images", x))
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", override.get(f"{split}-labels", y))
    return root


def _mnist(d: Path, **override) -> list[str]:
    _mnist_dir(d, **override)
    return ["train", *TINY, "--dataset", "mnist", "--data-root", "mnist", *OUT]


def _mnist_without(d: Path, name: str) -> list[str]:
    argv = _mnist(d)
    (d / "mnist" / name).unlink()
    return argv


def _mkdir(path: Path, argv: list[str]) -> list[str]:
    path.mkdir()
    return argv


def _then(_done, argv: list[str]) -> list[str]:
    return argv


def _mnist_raw(d: Path, name: str, payload: bytes) -> list[str]:
    argv = _mnist(d)
    (d / "mnist" / name).write_bytes(payload)
    return argv


def _noise(shape) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)


def _animal(d: Path, x=None, y=None, x_bytes: bytes | None = None) -> list[str]:
    root = d / "animal"
    root.mkdir()
    x = np.zeros((20, 28, 28), np.uint8) if x is None else x
    y = (np.arange(20) % 10).astype(np.int64) if y is None else y
    for name, obj, raw in (("animal_data_version_3.gz", x, x_bytes), ("animal_label_version_3.gz", y, None)):
        (root / name).write_bytes(raw if raw is not None else gzip.compress(pickle.dumps(obj)))
    return ["train", *TINY, "--data-root", "animal", *OUT]


def dataset_cases() -> list[Case]:
    idx_img = "train-images-idx3-ubyte.gz"
    good = gzip.compress(bytes([0, 0, 8, 3]) + b"".join(int(v).to_bytes(4, "big") for v in (30, 28, 28))
                         + bytes(30 * 28 * 28))
    return [
        Case("dataset-unknown", "dataset", "unknown dataset name",
             lambda d, s: ["train", *TINY, "--dataset", "cifar-1000", *OUT], "unknown dataset"),
        Case("idx-dir-missing", "dataset files (IDX)", "--data-root directory missing",
             lambda d, s: ["train", *TINY, "--dataset", "mnist", "--data-root", "nowhere", *OUT], "does not exist"),
        Case("idx-file-missing", "dataset files (IDX)", "one of the four files missing",
             lambda d, s: _mnist_without(d, "t10k-labels-idx1-ubyte.gz"), "missing IDX files"),
        Case("idx-empty", "dataset files (IDX)", "empty file",
             lambda d, s: _mnist_raw(d, idx_img, b""), "is empty"),
        Case("idx-truncated-gzip", "dataset files (IDX)", "truncated gzip download",
             lambda d, s: _mnist_raw(d, idx_img, good[: len(good) // 2]), "truncated gzip"),
        Case("idx-truncated", "dataset files (IDX)", "truncated data (header promises more)",
             lambda d, s: _mnist_raw(d, idx_img, gzip.compress(gzip.decompress(good)[:5000])), "is truncated"),
        Case("idx-wrong-magic", "dataset files (IDX)", "wrong magic (an HTML error page saved as the file)",
             lambda d, s: _mnist_raw(d, idx_img, gzip.compress(b"<html>404 Not Found</html>")),
             "not an IDX file"),
        Case("idx-not-gzip", "dataset files (IDX)", "named .gz but not gzip",
             lambda d, s: _mnist_raw(d, idx_img, b"\x00\x00\x08\x03garbage"), "not gzip data"),
        Case("idx-wrong-shape", "dataset files (IDX)", "images are 2-D (N, 784) instead of (N, 28, 28)",
             lambda d, s: _mnist(d, **{"train-images": np.zeros((30, 784), np.uint8)}), "expected uint8 images"),
        Case("idx-float-images", "dataset files (IDX)", "float images (with NaN) instead of uint8",
             lambda d, s: _mnist(d, **{"train-images": np.full((30, 28, 28), np.nan, np.float32)}),
             "expected uint8 images"),
        Case("idx-count-mismatch", "dataset files (IDX)", "30 images but 29 labels",
             lambda d, s: _mnist(d, **{"train-labels": (np.arange(29) % 10).astype(np.uint8)}),
             "do not belong together"),
        Case("idx-label-range", "dataset files (IDX)", "label 12 with 10 classes",
             lambda d, s: _mnist(d, **{"train-labels": np.full(30, 12, np.uint8)}), "labels must lie in 0..9"),
        Case("animal-missing", "dataset files (Animal-MNIST)", "--data-root without the data files",
             lambda d, s: _mkdir(d / "animal", ["train", *TINY, "--data-root", "animal", *OUT]),
             "missing data files"),
        Case("animal-empty", "dataset files (Animal-MNIST)", "empty data file",
             lambda d, s: _animal(d, x_bytes=b""), "is empty"),
        Case("animal-truncated", "dataset files (Animal-MNIST)", "truncated gzip",
             lambda d, s: _animal(d, x_bytes=gzip.compress(pickle.dumps(_noise((20, 28, 28))))[:3000]),
             "corrupt or truncated"),
        Case("animal-not-pickle", "dataset files (Animal-MNIST)", "not a pickle",
             lambda d, s: _animal(d, x_bytes=gzip.compress(b"hello, world")), "not a readable numpy pickle"),
        Case("animal-code", "dataset files (Animal-MNIST)", "pickle that would run code",
             lambda d, s: _animal(d, x_bytes=gzip.compress(pickle.dumps(_Evil()))), "refusing to load it"),
        Case("animal-wrong-shape", "dataset files (Animal-MNIST)", "images of shape (N, 784)",
             lambda d, s: _animal(d, x=np.zeros((20, 784), np.uint8)), "expected uint8 images"),
        Case("animal-count-mismatch", "dataset files (Animal-MNIST)", "20 images but 19 labels",
             lambda d, s: _animal(d, y=(np.arange(19) % 10).astype(np.int64)), "19 labels"),
    ]


# --- class vectors ------------------------------------------------------------------------------

def _vectors(d: Path, name: str, content) -> list[str]:
    path = d / name
    if isinstance(content, np.ndarray):
        with open(path, "wb") as fh:
            np.save(fh, content, allow_pickle=content.dtype == object)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return ["train", *TINY, "--class-vectors", name, *OUT]


ANIMALS = ["Bear", "Bird", "Cat", "Cow", "Dog", "Elephant", "Giraffe", "Horse", "Sheep", "Zebra"]


def _rows(n=10, dim=8, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim))


def _with(m: np.ndarray, i: int, value: float) -> np.ndarray:
    m = m.copy()
    m[i] = value
    return m


def _npy_bytes(m: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, m)
    return buf.getvalue()


def _named_csv(names: list[str], m: np.ndarray) -> str:
    return "".join(f"{n}," + ",".join(f"{v:.4f}" for v in row) + "\n" for n, row in zip(names, m))


def vector_cases() -> list[Case]:
    return [
        Case("vectors-missing", "class vectors", "file missing",
             lambda d, s: ["train", *TINY, "--class-vectors", "vectors.npy", *OUT], "does not exist"),
        Case("vectors-empty", "class vectors", "empty file",
             lambda d, s: _vectors(d, "vectors.npy", b""), "is empty"),
        Case("vectors-format", "class vectors", "unsupported format (.txt)",
             lambda d, s: _vectors(d, "vectors.txt", "1 2 3\n"), "unsupported format"),
        Case("vectors-truncated", "class vectors", "truncated .npy",
             lambda d, s: _vectors(d, "vectors.npy", _npy_bytes(_rows())[:200]), "not a plain numeric .npy"),
        Case("vectors-magic", "class vectors", "wrong magic (a CSV saved as .npy)",
             lambda d, s: _vectors(d, "vectors.npy", "0.1,0.2\n0.3,0.4\n"), "not a .npy file"),
        Case("vectors-rows", "class vectors", "9 rows for 10 classes",
             lambda d, s: _vectors(d, "vectors.npy", _rows(9)), "has 9 rows but there are 10 classes"),
        Case("vectors-1d", "class vectors", "1-D array",
             lambda d, s: _vectors(d, "vectors.npy", _rows()[0]), "expected a 2-D matrix"),
        Case("vectors-nan", "class vectors", "NaN in a row",
             lambda d, s: _vectors(d, "vectors.npy", _with(_rows(), 2, np.nan)), "NaN or infinite values"),
        Case("vectors-inf", "class vectors", "infinite value in a row",
             lambda d, s: _vectors(d, "vectors.npy", _with(_rows(), 4, np.inf)), "NaN or infinite values"),
        Case("vectors-zero", "class vectors", "all-zero row",
             lambda d, s: _vectors(d, "vectors.npy", _with(_rows(), 0, 0.0)), "all-zero vector"),
        Case("vectors-code", "class vectors", ".npy holding a pickled object that would run code",
             lambda d, s: _vectors(d, "vectors.npy", np.array([_Evil()], dtype=object)),
             "not a plain numeric .npy"),
        Case("vectors-csv-text", "class vectors", "CSV cell that is not a number",
             lambda d, s: _vectors(d, "vectors.csv", _named_csv(ANIMALS, _rows()).replace("Cat,", "Cat,abc,", 1)),
             "is not a number"),
        Case("vectors-csv-class", "class vectors", "CSV without a row for a class (unknown class name)",
             lambda d, s: _vectors(d, "vectors.csv", _named_csv([*ANIMALS[:9], "Unicorn"], _rows())),
             "no row for class(es) Zebra"),
        Case("vectors-csv-ragged", "class vectors", "CSV rows of different lengths",
             lambda d, s: _vectors(d, "vectors.csv", _named_csv(ANIMALS, _rows()) + "Zebra,1\n"),
             "appears twice"),
        Case("vectors-csv-width", "class vectors", "CSV rows with different numbers of values",
             lambda d, s: _vectors(d, "vectors.csv", _named_csv(ANIMALS[:9], _rows(9)) + "Zebra,1,2\n"),
             "different numbers of values"),
        Case("vectors-csv-encoding", "class vectors", "CSV that is not UTF-8 text",
             lambda d, s: _vectors(d, "vectors.csv", b"\xff\xfe\x00B\x00e\x00a\x00r"), "not a UTF-8"),
    ]


# --- configuration ------------------------------------------------------------------------------

def _config(d: Path, name: str, text: str | bytes) -> list[str]:
    path = d / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return ["train", "--config", name, *OUT]  # no flags: they would override the file


def _set(*items: str) -> Callable[[Path, Path], list[str]]:
    return lambda d, s: ["train", *TINY, *[a for i in items for a in ("--set", i)], *OUT]


def config_cases() -> list[Case]:
    return [
        Case("config-missing", "config file", "file missing",
             lambda d, s: ["train", "--config", "my.yaml", *OUT], "does not exist"),
        Case("config-directory", "config file", "a directory instead of a file",
             lambda d, s: _mkdir(d / "my.yaml", ["train", "--config", "my.yaml", *OUT]), "is a directory"),
        Case("config-extension", "config file", "unknown extension (.ini)",
             lambda d, s: _config(d, "my.ini", "[model]\nbits = 16\n"), "unknown extension"),
        Case("config-yaml-syntax", "config file", "YAML syntax error",
             lambda d, s: _config(d, "my.yaml", "model:\n  bits: [16\n"), "could not be parsed"),
        Case("config-toml-syntax", "config file", "TOML syntax error",
             lambda d, s: _config(d, "my.toml", "[model\nbits = 16\n"), "could not be parsed"),
        Case("config-encoding", "config file", "not UTF-8 text",
             lambda d, s: _config(d, "my.yaml", b"model:\n  bits: \xff\xfe\n"), "not UTF-8 text"),
        Case("config-code", "config file", "YAML tag that would run code",
             lambda d, s: _config(d, "my.yaml", f"model: !!python/object/apply:os.system ['touch {PWNED}']\n"),
             "could not be parsed"),
        Case("config-top-level", "config file", "a list instead of sections",
             lambda d, s: _config(d, "my.yaml", "- 16\n- 32\n"), "top level must be a mapping"),
        Case("config-section", "config file", "a section that is not a table",
             lambda d, s: _config(d, "my.yaml", "model: 16\n"), "expected a table"),
        Case("config-unknown-key", "config file", "unknown key (typo)",
             lambda d, s: _config(d, "my.yaml", "model:\n  bitz: 16\n"), "unknown key(s) bitz"),
        Case("config-type", "config file", "wrong type",
             lambda d, s: _config(d, "my.yaml", "model:\n  bits: sixteen\n"), "expected a value of type int"),
        Case("bits-not-multiple", "config value", "bits not a multiple of 8",
             lambda d, s: ["train", *TINY, "--bits", "12", *OUT], "multiple of 8"),
        Case("bits-zero", "config value", "bits = 0",
             lambda d, s: ["train", *TINY, "--bits", "0", *OUT], "multiple of 8"),
        Case("config-nan", "config value", "NaN learning rate",
             _set("train.lr=nan"), "train.lr = nan"),
        Case("config-inf", "config value", "infinite loss weight",
             _set("model.w_rel=inf"), "model.w_rel = inf"),
        Case("config-lr-negative", "config value", "negative learning rate",
             _set("train.lr=-0.1"), "train.lr = -0.1"),
        Case("config-negative-weight", "config value", "negative loss weight",
             _set("model.w_dis=-1"), ">= 0"),
        Case("config-seed-negative", "config value", "negative seed",
             lambda d, s: ["train", *TINY, "--seed", "-1", *OUT], "train.seed = -1"),
        Case("config-epochs", "config value", "0 epochs",
             lambda d, s: ["train", *TINY, "--epochs", "0", *OUT], "at least 1"),
        Case("config-query-fraction", "config value", "query fraction outside (0, 1)",
             _set("data.query_fraction=1.5"), "query_fraction"),
        Case("config-max-per-class", "config value", "max_per_class = 1",
             lambda d, s: ["train", *TINY, "--max-per-class", "1", *OUT], "at least 2"),
        Case("method-unknown", "config value", "unknown method",
             lambda d, s: ["train", *TINY, "--method", "resnet-hash", *OUT], "unknown method"),
        Case("backbone-unknown", "config value", "unknown backbone",
             _set("model.backbone=vgg"), "unknown backbone"),
        Case("device-bad", "config value", "not a device name",
             lambda d, s: ["train", *TINY, "--device", "gpu", *OUT], "is not a device"),
        Case("loss-diverges", "config value", "a learning rate so large that training diverges (1e30)",
             _set("train.lr=1e30", "train.batch_size=8"), "the loss became nan"),
        Case("out-is-file", "command line", "--out names a file, not a directory",
             lambda d, s: _then((d / "blocker").write_text("x"), ["train", *TINY, "--out", "blocker", "--name", "r"]),
             "cannot access"),
        Case("override-syntax", "command line", "--set without '='",
             lambda d, s: ["train", *TINY, "--set", "model.bits", *OUT], "section.key=value"),
        Case("unseen-unknown", "class names", "unknown unseen class name",
             lambda d, s: ["train", *TINY, "--unseen", "cat,unicorn", *OUT], "unicorn"),
        Case("seen-empty", "class names", "every class unseen (empty seen set)",
             lambda d, s: ["train", *TINY, "--unseen", ",".join(ANIMALS), *OUT], "keep at least one seen class"),
        Case("unseen-empty", "class names", "no unseen class (n_unseen = 0)",
             _set("data.n_unseen=0"), "n_unseen = 0"),
        Case("validation-too-few", "class names", "one seen class: nothing for the validation protocol to hold out",
             lambda d, s: ["train", *TINY, "--set", "train.select_epochs=true", "--unseen", ",".join(ANIMALS[1:]),
                           *OUT], "train.select_epochs=false"),
    ]


# --- checkpoints and resume states --------------------------------------------------------------

def _evaluate_with(d: Path, s: Path, mutate: Callable[[Path], None], src: str = "run16") -> list[str]:
    run = _copy_run(s / src, d)
    mutate(run / "checkpoint.pt")
    return ["evaluate", "run"]


def _torch_save(obj) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        import torch

        torch.save(obj, path)
    return write


def _edit_checkpoint(edit: Callable[[dict, Path], None]) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        import torch

        payload = torch.load(path, weights_only=True)
        edit(payload, path)
        torch.save(payload, path)
    return write


def _swap_weights(other: str):
    def edit(payload: dict, path: Path) -> None:
        import torch

        payload["state_dict"] = torch.load(path.parents[1] / "sources" / other / "checkpoint.pt",
                                           weights_only=True)["state_dict"]
    return edit


def _other_method(payload: dict, path: Path) -> None:
    payload["method"] = payload["config"]["model"]["method"] = "resnet-hash"


def _nan_weights(payload: dict, path: Path) -> None:
    payload["state_dict"]["hash_head.weight"][0, 0] = float("nan")


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _copy_checkpoint(name: str) -> Callable[[Path], None]:
    return lambda path: shutil.copy(path.parents[1] / "sources" / name / "checkpoint.pt", path)


def _resume_with(d: Path, s: Path, mutate: Callable[[Path], None] | None, extra: list[str] = ()) -> list[str]:
    run = _copy_run(s / "stopped", d)
    if mutate is not None:
        mutate(run / "resume.pt")
    return ["train", "--resume", "run", *extra]


def checkpoint_cases() -> list[Case]:
    keep = ["run"]
    return [
        Case("run-missing", "checkpoint", "run directory missing",
             lambda d, s: ["evaluate", "run"], "does not exist"),
        Case("checkpoint-missing", "checkpoint", "checkpoint.pt missing",
             lambda d, s: _evaluate_with(d, s, os.remove), "does not exist", keep),
        Case("checkpoint-empty", "checkpoint", "empty file",
             lambda d, s: _evaluate_with(d, s, lambda p: p.write_bytes(b"")), "is empty", keep),
        Case("checkpoint-truncated", "checkpoint", "truncated file",
             lambda d, s: _evaluate_with(d, s, _truncate), "truncated, corrupt", keep),
        Case("checkpoint-magic", "checkpoint", "wrong magic (a text file)",
             lambda d, s: _evaluate_with(d, s, lambda p: p.write_text("not a checkpoint")),
             "not a torch checkpoint", keep),
        Case("checkpoint-foreign", "checkpoint", "a torch file that is not a vsb2net checkpoint",
             lambda d, s: _evaluate_with(d, s, _torch_save({"weight": np.zeros(3).tolist()})),
             "not a vsb2net checkpoint", keep),
        Case("checkpoint-version", "checkpoint", "format version from a newer vsb2net",
             lambda d, s: _evaluate_with(d, s, _edit_checkpoint(lambda p, _: p.update(version=99))),
             "format version 99", keep),
        Case("checkpoint-code", "checkpoint", "pickle that would run code",
             lambda d, s: _evaluate_with(d, s, _torch_save({"format": "vsb2net/checkpoint", "x": _Evil()})),
             "refused unread", keep),
        Case("checkpoint-other-bits", "checkpoint", "checkpoint of another run (32 bits) copied into a 16-bit run",
             lambda d, s: _evaluate_with(d, s, _copy_checkpoint("run32")), "comes from another run", keep),
        Case("checkpoint-weights-bits", "checkpoint", "weights of a 32-bit model under 16-bit metadata",
             lambda d, s: _evaluate_with(d, s, _edit_checkpoint(_swap_weights("run32"))),
             "does not fit a vsb2net model with 16 bits", keep),
        Case("checkpoint-other-model", "checkpoint", "a method this vsb2net does not know",
             lambda d, s: _evaluate_with(d, s, _edit_checkpoint(_other_method)), "does not have", keep),
        Case("checkpoint-nan", "checkpoint", "NaN in the weights",
             lambda d, s: _evaluate_with(d, s, _edit_checkpoint(_nan_weights)), "NaN or infinite values", keep),
        Case("evaluate-vectors-changed", "checkpoint", "class-vector file changed since training (other dimension)",
             lambda d, s: _evaluate_changed_vectors(d, s), "semantic vectors of dimension", keep),
        Case("resume-missing", "resume state", "--resume of a directory that does not exist",
             lambda d, s: ["train", "--resume", "run"], "does not exist"),
        Case("resume-finished", "resume state", "--resume of a finished run",
             lambda d, s: _then(_copy_run(s / "run16", d), ["train", "--resume", "run"]), "nothing to resume", keep),
        Case("resume-never-started", "resume state", "--resume of a directory without resume.pt",
             lambda d, s: _mkdir(d / "run", ["train", "--resume", "run"]), "has no resume.pt", keep),
        Case("resume-truncated", "resume state", "truncated resume.pt",
             lambda d, s: _resume_with(d, s, _truncate), "truncated, corrupt", keep),
        Case("resume-code", "resume state", "resume.pt holding a pickle that would run code",
             lambda d, s: _resume_with(d, s, _torch_save({"format": "vsb2net/resume", "x": _Evil()})),
             "refused unread", keep),
        Case("resume-foreign", "resume state", "a model checkpoint renamed to resume.pt",
             lambda d, s: _resume_with(d, s, _copy_checkpoint("run16")), "not a vsb2net resume file", keep),
        Case("resume-other-run", "resume state", "resume.pt copied from another run",
             lambda d, s: _resume_other_run(d, s), "belongs to another run", keep),
        Case("resume-with-flags", "resume state", "--resume with a flag that changes the run",
             lambda d, s: _resume_with(d, s, None, ["--bits", "32"]), "drop --bits", keep),
    ]


def _evaluate_changed_vectors(d: Path, s: Path) -> list[str]:
    import yaml

    from vsb2net.data.semantics import glove_vectors

    np.save(d / "vectors.npy", glove_vectors(ANIMALS))
    argv = ["train", *TINY, "--class-vectors", "vectors.npy", "--out", ".", "--name", "run"]
    from vsb2net.cli import main

    with _quiet():
        assert main(argv) == 0
    np.save(d / "vectors.npy", _rows(10, 12))  # the file changed after training: now 12-D
    cfg = yaml.safe_load((d / "run" / "config.yaml").read_text())
    assert cfg["data"]["class_vectors"] == "vectors.npy"
    return ["evaluate", "run"]


def _resume_other_run(d: Path, s: Path) -> list[str]:
    run = _copy_run(s / "stopped", d)
    text = (run / "config.yaml").read_text().replace("bits: 16", "bits: 32")
    (run / "config.yaml").write_text(text)
    return ["train", "--resume", "run"]


# --- retrieval: indexes, query images, query codes and vectors (vsb2net index / search) -------------

def _search(d: Path, s: Path, *query: str, index: str = "db16", mutate: Callable[[Path], None] | None = None,
            files: dict[str, bytes] | None = None) -> list[str]:
    _copy_run(s / "run16", d)
    shutil.copy(s / f"{index}.vsbidx", d / "db.vsbidx")
    if mutate is not None:
        mutate(d / "db.vsbidx")
    for name, data in (files or {}).items():
        (d / name).write_bytes(data)
    return ["search", "run", "db.vsbidx", *query]


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(_noise((28, 28))).save(buf, format="PNG")
    return buf.getvalue()


def _build(d: Path, s: Path, *source: str, files: dict[str, object] | None = None) -> list[str]:
    _copy_run(s / "run16", d)
    for name, data in (files or {}).items():
        if isinstance(data, np.ndarray):
            np.save(d / name, data)
        elif data is None:
            (d / name).mkdir()
        else:
            (d / name).write_bytes(data)
    return ["index", "build", "run", *source, "-o", "out/db.vsbidx"]


def retrieval_cases() -> list[Case]:
    keep = ["run"]
    return [
        Case("index-missing", "index", "index file missing",
             lambda d, s: _then(_copy_run(s / "run16", d), ["search", "run", "db.vsbidx", "--code", "abcd"]),
             "does not exist", keep),
        Case("index-empty", "index", "empty file",
             lambda d, s: _search(d, s, "--code", "abcd", mutate=lambda p: p.write_bytes(b"")),
             "is not a vsb2net index", keep),
        Case("index-magic", "index", "wrong magic (a text file)",
             lambda d, s: _search(d, s, "--code", "abcd", mutate=lambda p: p.write_text("hello")),
             "is not a vsb2net index", keep),
        Case("index-truncated", "index", "truncated file",
             lambda d, s: _search(d, s, "--code", "abcd", mutate=_truncate), "is truncated", keep),
        Case("index-corrupt", "index", "a flipped byte in the codes",
             lambda d, s: _search(d, s, "--code", "abcd", mutate=_flip_byte), "checksum", keep),
        Case("index-other-bits", "index", "index of 32-bit codes searched with a 16-bit run",
             lambda d, s: _search(d, s, "--code", "abcd", index="db32"), "holds 32-bit codes", keep),
        Case("index-other-model", "index", "index built by another model of the same code length",
             lambda d, s: _search(d, s, "--code", "abcd", index="db16b"), "built with another model", keep),
        Case("query-image-missing", "query image", "image file missing",
             lambda d, s: _search(d, s, "--image", "q.png"), "does not exist", keep),
        Case("query-image-not-image", "query image", "a text file named .png",
             lambda d, s: _search(d, s, "--image", "q.png", files={"q.png": b"not an image"}),
             "cannot read image", keep),
        Case("query-image-truncated", "query image", "truncated PNG",
             lambda d, s: _search(d, s, "--image", "q.png", files={"q.png": _png()[:60]}), "q.png", keep),
        Case("query-code-length", "query code", "hex code of the wrong length (24 bits for a 16-bit run)",
             lambda d, s: _search(d, s, "--code", "abcdef"), "needs 4", keep),
        Case("query-code-hex", "query code", "not a hex string",
             lambda d, s: _search(d, s, "--code", "zzzz"), "not a valid hex string", keep),
        Case("query-class-unknown", "query class name", "a word without a GloVe vector",
             lambda d, s: _search(d, s, "--class-name", "unicornzz"), "unicornzz", keep),
        Case("query-vector-dim", "query class vector", "vector of another dimension (3 for a 50-d run)",
             lambda d, s: _search(d, s, "--class-vector", "v.npy", files={"v.npy": _npy_bytes(np.ones((1, 3)))}),
             "takes 50", keep),
        Case("query-vector-nan", "query class vector", "NaN in the vector",
             lambda d, s: _search(d, s, "--class-vector", "v.npy",
                                  files={"v.npy": _npy_bytes(np.full((1, 50), np.nan))}), "NaN", keep),
        Case("codes-missing", "codes to index", "codes file missing",
             lambda d, s: _build(d, s, "--codes", "c.npy"), "does not exist", keep),
        Case("codes-shape", "codes to index", "codes of another length (3 bytes for a 16-bit run)",
             lambda d, s: _build(d, s, "--codes", "c.npy", files={"c.npy": np.zeros((5, 3), np.uint8)}),
             "does not hold 16-bit codes", keep),
        Case("codes-nan", "codes to index", "unpacked codes with NaN",
             lambda d, s: _build(d, s, "--codes", "c.npy", files={"c.npy": np.full((5, 16), np.nan, np.float32)}),
             "NaN", keep),
        Case("codes-code", "codes to index", ".npy holding a pickled object that would run code",
             lambda d, s: _build(d, s, "--codes", "c.npy", files={"c.npy": _npy_bytes_object()}), "c.npy", keep),
        Case("images-empty", "images to index", "a folder without images",
             lambda d, s: _build(d, s, "--images", "imgs", files={"imgs": None}), "no image files", keep),
    ]


def _npy_bytes_object() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array([_Evil()], dtype=object), allow_pickle=True)
    return buf.getvalue()


def _files(d: Path, files: dict[str, bytes | np.ndarray], argv: list[str]) -> list[str]:
    """Write ``files`` (bytes, or arrays saved as .npy / PNG by extension) under ``d``; return argv."""
    from PIL import Image

    for rel, content in files.items():
        path = d / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif rel.endswith(".png"):
            Image.fromarray(content).save(path)
        else:
            np.save(path, content)
    return argv


def _grey(h: int, w: int) -> np.ndarray:
    return np.random.default_rng(h * w).integers(0, 256, (h, w), dtype=np.uint8)


def format_cases() -> list[Case]:
    """The other dataset formats (CIFAR, xlsa17, image folders, npy directories, NUS-WIDE)."""
    feats = np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32)
    npy_ok = {"f/features.npy": feats, "f/labels.npy": np.arange(12) % 4, "f/classes.txt": b"cat\ndog\ncow\npig\n"}
    return [
        Case("cifar-missing", "dataset files (CIFAR)", "--data-root without the CIFAR files",
             lambda d, s: _mkdir(d / "empty", ["train", *TINY, "--dataset", "cifar10", "--data-root", "empty", *OUT]),
             "cifar"),
        Case("xlsa17-not-mat", "dataset files (xlsa17)", ".mat files that are not MATLAB files",
             lambda d, s: _files(d, {"AWA2/res101.mat": b"not a mat file", "AWA2/att_splits.mat": b"nor this"},
                                 ["train", *TINY, "--dataset", "awa2", "--data-root", "AWA2", *OUT]),
             "not a readable MATLAB"),
        Case("folder-corrupt-image", "dataset files (image folder)", "a .png that does not decode",
             lambda d, s: _files(d, {"imgs/cat/a.png": b"\x89PNG garbage", "imgs/dog/b.png": _grey(8, 8)},
                                 ["train", *TINY, "--dataset", "image-folder", "--data-root", "imgs", *OUT]), "a.png"),
        Case("folder-sizes", "dataset files (image folder)", "images of different sizes, no data.image_size",
             lambda d, s: _files(d, {"imgs/cat/a.png": _grey(8, 8), "imgs/cat/b.png": _grey(8, 8),
                                     "imgs/dog/c.png": _grey(9, 8), "imgs/dog/d.png": _grey(8, 8)},
                                 ["train", *TINY, "--dataset", "image-folder", "--data-root", "imgs", *OUT]),
             "data.image_size"),
        Case("npy-count", "dataset files (npy directory)", "13 labels for 12 feature rows",
             lambda d, s: _files(d, {**npy_ok, "f/labels.npy": np.arange(13) % 4},
                                 ["train", *TINY, "--dataset", "npy", "--data-root", "f", *OUT]), "holds 12 items"),
        Case("npy-multilabel-not01", "dataset files (npy directory)", "a label matrix holding a 2",
             lambda d, s: _files(d, {**npy_ok, "f/labels.npy": np.full((12, 4), 2)},
                                 ["train", *TINY, "--dataset", "npy", "--data-root", "f", *OUT]), "only 0 and 1"),
        Case("npy-backbone", "config value", "an image backbone (cnn28) on precomputed features",
             lambda d, s: _files(d, npy_ok, ["train", *TINY, "--dataset", "npy", "--data-root", "f",
                                             "--set", "model.backbone=cnn28", *OUT]),
             "cannot take precomputed features"),
        Case("nus-wide-labels", "dataset files (NUS-WIDE)", "label files of different lengths",
             lambda d, s: _files(d, {"N/Groundtruth/AllLabels/Labels_sky.txt": b"1\n0\n1\n",
                                     "N/Groundtruth/AllLabels/Labels_water.txt": b"1\n0\n",
                                     "N/Low_Level_Features/Normalized_CH.dat": b"0.1 0.2\n0.3 0.4\n0.5 0.6\n"},
                                 ["train", *TINY, "--dataset", "nus-wide", "--data-root", "N", *OUT]),
             "different number of lines"),
        Case("proposed-split-missing", "config value", "data.unseen_split=proposed on a dataset without one",
             _set("data.unseen_split=proposed"), "has no proposed split"),
    ]


def all_cases() -> list[Case]:
    return (dataset_cases() + format_cases() + vector_cases() + config_cases() + checkpoint_cases()
            + retrieval_cases())


# --- running a case -----------------------------------------------------------------------------

@dataclass
class Outcome:
    rc: int
    stderr: str
    leftovers: list[str]
    pwned: bool
    message: str


def _snapshot(d: Path, runs: list[str]) -> dict[str, dict[str, float]]:
    return {r: {p.name: p.stat().st_mtime_ns for p in sorted((d / r).iterdir())} for r in runs if (d / r).is_dir()}


def run_case(case: Case, d: Path, sources: Path) -> Outcome:
    """Build the case under ``d`` (empty) and run its command in-process with ``d`` as cwd."""
    from vsb2net.cli import main

    d.mkdir(parents=True, exist_ok=True)
    if not (d / "sources").exists():
        (d / "sources").symlink_to(sources.resolve(), target_is_directory=True)
    before_cwd = os.getcwd()
    os.chdir(d)
    try:
        argv = case.build(d, sources)
        before = _snapshot(d, case.keep)
        err = io.StringIO()
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(err):
            rc = main(argv)
        after = _snapshot(d, case.keep)
    finally:
        os.chdir(before_cwd)
    leftovers = [str(p.relative_to(d)) for p in (d / "out").rglob("*")] if (d / "out").exists() else []
    leftovers += [f"{r} changed" for r in case.keep if before.get(r) != after.get(r)]
    stderr = err.getvalue().replace(str(sources.resolve()), "sources")
    message = stderr.strip().removeprefix("vsb2net: error: ")
    return Outcome(rc, stderr, leftovers, (d / PWNED).exists(), message)


def check(case: Case, o: Outcome) -> list[str]:
    """What is wrong with the outcome (empty when the case behaves)."""
    problems = []
    if o.rc == 0:
        problems.append("exit status 0")
    if "Traceback" in o.stderr:
        problems.append("traceback")
    if not o.stderr.startswith("vsb2net: error: ") or o.stderr.strip().count("\n"):
        problems.append(f"not one 'vsb2net: error:' paragraph: {o.stderr!r}")
    if case.expect not in o.stderr:
        problems.append(f"{case.expect!r} not in {o.stderr!r}")
    if o.leftovers:
        problems.append(f"left behind: {o.leftovers}")
    if o.pwned:
        problems.append("the payload ran")
    return problems


# --- the table ----------------------------------------------------------------------------------

HEADER = """# What vsb2net does with bad input

Every input the command line reads (dataset files, class vectors, configs and flags, checkpoints
and resume states, and for `vsb2net index`/`search` the indexes, query images, codes and class
vectors), the bad cases tried, and the error users see. Each row is a test
(`tests/test_robustness.py`, case id in the first column): the command exits with status 2,
prints this one paragraph and no traceback (`--debug`, before or after the command, shows one),
and leaves no output file behind. Files that could run code when loaded (checkpoints, resume
states, pickled datasets, `.npy` files, YAML tags) are refused without running anything: each
such case checks that its payload did not run.

Generated by `python benchmarks/robustness_table.py > docs/ROBUSTNESS.md`; a test fails when this
file and the messages differ. Paths are relative to the directory the command ran in.

Interruption (Ctrl-C, SIGTERM, SIGKILL) and resuming are covered in `tests/test_scale_out.py`;
the "Interrupting and resuming" section of docs/SCALING.md says what happens.

| id | input | case | error message |
|---|---|---|---|
"""


def row(case: Case, message: str) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")
    return f"| `{case.id}` | {cell(case.input)} | {cell(case.case)} | {cell(message)} |"


def table(messages: dict[str, str]) -> str:
    cases = all_cases()
    return HEADER + "\n".join(row(c, messages[c.id]) for c in cases) + f"\n\n{len(cases)} cases.\n"


def doc_messages(text: str) -> dict[str, str]:
    """case id -> message, read back from a generated table."""
    out = {}
    for line in text.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            out[cells[0].strip("`")] = cells[-1].replace("\\|", "|")
    return out


def normalise(message: str) -> str:
    """Make a message comparable between machines and model versions: the paths of the installed
    packages vary, and so do model fingerprints whenever training changes, and file sizes that
    hold a path."""
    message = re.sub(r"\b[0-9a-f]{16}\b", "<fingerprint>", message.replace(sys.prefix, "<venv>"))
    return re.sub(r"\(\d+ bytes, expected \d+\)", "(<n> bytes, expected <m>)", message)


