"""A run directory: the one owner of what ``vsb2net train`` and ``evaluate`` write there, of loading
it back, of its identity and of its resume checks; and :class:`Run`, a loaded run that codes
images, class names, class vectors and free text.

Every file of a run is written by a function of this module (the stages of ``pipeline.py`` and
``report.py`` call them) and read back through it; ``vsb2net.index.open_index`` opens indexes of a
run's codes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import load_checkpoint, load_training_state, save_checkpoint, save_training_state
from .codes import pack_codes
from .config import RunConfig, apply_overrides, config_from_dict, load_config_file, save_config, saved_config_from_dict
from .errors import VsbError
from .io import atomic_path, write_json, write_npy, write_text
from .models import METHODS, HashingMethod, create_method, images_to_tensor
from .models.base import encode

# ----------------------------------------------------------------------------- the layout

CONFIG = "config.yaml"
#: the weights and what built them (method, bits, config, class names, input shape)
CHECKPOINT = "checkpoint.pt"
#: the training state at the last epoch boundary, while training is under way
RESUME = "resume.pt"
#: the class vectors the run trained with, as its semantic branch saw them
CLASS_VECTORS = "class_vectors.npy"
SPLIT = "split.json"
TRAINING = "training.json"
METRICS = "metrics.json"
CODES = "codes.npz"
REPORT = "report.md"
#: the report's pictures
PR_CURVE = "pr_curve.png"
PRECISION_AT_K = "precision_at_k.png"
RETRIEVALS = "retrievals.png"
#: what ``train`` writes; a file of these left half-written by a killed process is removed
TRAIN_OUTPUTS = (CONFIG, RESUME, CHECKPOINT, CLASS_VECTORS, SPLIT, TRAINING)
#: config keys that may change on resume: where the run computes and how it reports, not what
RESUME_OVERRIDABLE = {"train.device", "train.progress", "data.feature_cache"}


def default_dir(cfg: RunConfig) -> Path:
    """Where a run of ``cfg`` goes when no directory is named."""
    name = cfg.name or f"{cfg.data.dataset}_{cfg.model.method}_{cfg.model.bits}bits_seed{cfg.train.seed}"
    return Path(cfg.out_dir) / name


def remove_stale_temporaries(out: Path) -> None:
    # atomic_path removes its temporary on any exception, but not after SIGKILL or a power cut
    for name in TRAIN_OUTPUTS:
        for tmp in out.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def discard(out: Path, created: bool) -> None:
    """Undo a fresh run that failed: its config and resume state describe no result."""
    for name in (CONFIG, RESUME):
        (out / name).unlink(missing_ok=True)
    remove_stale_temporaries(out)
    if created:
        try:
            out.rmdir()
        except OSError:
            pass  # not empty: something else lives there


#: class-name mAP under this many times its chance level reads as "barely better than random"
NEAR_CHANCE_RATIO = 1.5


def class_name_quality(unseen_row: dict | None) -> dict | None:
    """How well searching by an unseen class's name works, from the run's measured class-name mAP
    on its unseen classes (``metrics.json``'s unseen row) and the mAP of a random order (chance):
    ``map``, ``chance``, ``ratio``, ``level`` ("below_chance", "near_chance" under
    NEAR_CHANCE_RATIO x chance, "above_chance", or "measured" without a chance) and ``plain``, the
    same in words for a person.  None before the run was evaluated (or for a method that codes no
    class names)."""
    row = unseen_row or {}
    value, chance = row.get("class_query_map"), row.get("class_query_chance")
    if value is None:
        return None
    figures = f"measured mAP {value:.3f}" + (f" against {chance:.3f} for a random order" if chance else "")
    ratio = value / chance if chance else None
    if ratio is None:
        level, words = "measured", f"class-name search on unseen classes: {figures}"
    elif ratio < 1:
        level, words = "below_chance", (f"class-name search on unseen classes does worse than random here ({figures}): "
                                        "expect few hits of the class searched for")
    elif ratio < NEAR_CHANCE_RATIO:
        level, words = "near_chance", (f"class-name search on unseen classes is barely better than random here "
                                       f"({figures}): expect most hits to be of other classes")
    else:
        level, words = "above_chance", (f"class-name search on unseen classes does {ratio:.1f}x better than random "
                                        f"here ({figures})")
    return {"map": float(value), "chance": None if chance is None else float(chance),
            "ratio": None if ratio is None else round(ratio, 3), "level": level, "plain": words + "."}


def read_json(path: Path, default: Any = None) -> Any:
    """A JSON file of the run, or ``default`` when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


# ----------------------------------------------------------------------------- writing

def write_config(out: Path, cfg: RunConfig) -> None:
    save_config(cfg, out / CONFIG)


def write_resume_state(out: Path, phase: str, epochs: int, cfg: RunConfig, state: dict, extra: dict) -> None:
    """The training state at an epoch boundary, to resume from (:func:`resume_config`)."""
    save_training_state(out / RESUME, phase, epochs, cfg.to_dict(), state, extra)


def drop_resume_state(out: Path) -> None:
    (out / RESUME).unlink(missing_ok=True)


def has_resume_state(out: Path) -> bool:
    return (out / RESUME).is_file()


def write_trained(out: Path, state_dict: dict, meta: dict, vectors: np.ndarray, split: dict, training: dict) -> None:
    """What a finished training leaves: the weights with what built them (``meta``: method, bits,
    config, class names, input shape, ...), the class vectors, the split and the training record."""
    save_checkpoint(out / CHECKPOINT, state_dict, meta)
    write_npy(out / CLASS_VECTORS, vectors.astype(np.float32))
    write_json(out / SPLIT, split)
    write_json(out / TRAINING, training)


def write_evaluation(out: Path, codes: dict[str, np.ndarray], metrics: dict) -> None:
    """What an evaluation leaves: the codes (``codes.npz``) and the metrics record."""
    with atomic_path(out / CODES) as tmp:
        with open(tmp, "wb") as fh:
            # (mypy matches **codes against savez's allow_pickle flag; the keys are the arrays' names)
            np.savez(fh, **codes)  # type: ignore[arg-type]
    write_json(out / METRICS, metrics)


def write_report_text(out: Path, text: str) -> Path:
    return write_text(out / REPORT, text)


def write_figure(out: Path, name: str, fig: Any) -> Path:
    """A matplotlib figure as the run's picture ``name`` (PNG), written atomically."""
    with atomic_path(out / name) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return out / name


# ----------------------------------------------------------------------------- resuming

def resume_config(path: str | Path, overrides: list[str] | None = None) -> tuple[RunConfig, dict]:
    """The configuration and saved training state of an interrupted run directory.

    ``overrides`` (``section.key=value``) may only touch :data:`RESUME_OVERRIDABLE`: anything else
    would make the continuation a different run from the one that was interrupted.
    """
    path = Path(path)
    if not path.is_dir():
        raise VsbError(f"run directory {path} does not exist; give the directory of the interrupted run "
                       "(the one `vsb2net train` printed).")
    state_path = path / RESUME
    if not state_path.is_file():
        if (path / CHECKPOINT).is_file():
            raise VsbError(f"{path} holds a finished run ({CHECKPOINT}, no {RESUME}): there is nothing to "
                           f"resume. Evaluate it with `vsb2net evaluate {path}`, or train again without --resume.")
        raise VsbError(f"{path} has no {RESUME}: training there never finished an epoch, or it is not a run "
                       "directory. Start the run again without --resume.")
    state = load_training_state(state_path)
    for item in overrides or []:
        key = item.split("=", 1)[0].strip()
        if key not in RESUME_OVERRIDABLE:
            raise VsbError(f"--resume continues {path} with the configuration it started with; {key} cannot "
                           f"change (only {', '.join(sorted(RESUME_OVERRIDABLE))} can). Drop that option, "
                           "or start a new run without --resume.")
    try:
        base = saved_config_from_dict(state["config"])
        cfg = config_from_dict(apply_overrides(base.to_dict(), overrides or [])).validate()
    except VsbError as exc:
        raise VsbError(f"training state {state_path} holds an unusable configuration ({exc}); start the run "
                       "again without --resume.") from None
    if (path / CONFIG).is_file():
        on_disk = _comparable(saved_config_from_dict(load_config_file(path / CONFIG)).to_dict())
        ours = _comparable(base.to_dict())
        differ = sorted(k for k in set(on_disk) | set(ours) if on_disk.get(k) != ours.get(k))
        if differ:
            raise VsbError(f"{state_path} belongs to another run than {path / CONFIG} (they differ in "
                           f"{', '.join(differ[:6])}); it was copied from elsewhere. Put the run's own "
                           f"{RESUME} back, or start the run again without --resume.")
    return cfg, state


def _comparable(values: dict, prefix: str = "") -> dict:
    flat = {}
    for k, v in values.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            flat.update(_comparable(v, key + "."))
        elif key not in RESUME_OVERRIDABLE:
            flat[key] = v
    return flat


# ----------------------------------------------------------------------------- loading

def model_fingerprint(ckpt: dict) -> str:
    """SHA-256 (first 16 hex digits) of the model's method, config and weights.

    Only what decides the codes goes in: two checkpoints with the same weights and model
    config code every input alike whatever else (paths, training state) they carry.
    """
    h = hashlib.sha256()
    head = {"method": ckpt.get("method"), "bits": ckpt.get("bits"),
            "model": (ckpt.get("config") or {}).get("model"), "in_shape": ckpt.get("in_shape"),
            "semantic_dim": ckpt.get("semantic_dim")}
    h.update(json.dumps(head, sort_keys=True, default=str).encode())
    for name in sorted(ckpt["state_dict"]):
        t = ckpt["state_dict"][name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _load_model(path: Path) -> tuple[RunConfig, HashingMethod, dict]:
    where = path / CHECKPOINT
    ckpt = load_checkpoint(where)
    # the method first: its parameters are read by the method, so an unknown one says so plainly
    if ckpt["method"] not in METHODS:
        raise VsbError(f"checkpoint {where} was trained with method {ckpt['method']!r}, which this vsb2net does not "
                       f"have (known: {', '.join(METHODS.names())}); use the vsb2net that trained it.")
    try:
        cfg = saved_config_from_dict(ckpt["config"]).validate()
    except VsbError as exc:
        raise VsbError(f"checkpoint {where} holds an unusable configuration ({exc}); retrain the run.") from None
    _check_same_run(path, cfg, ckpt)
    try:
        # the checkpoint holds every weight: do not fetch pretrained ones again just to overwrite them
        model = create_method(ckpt["method"], dataclasses.replace(cfg.model, backbone_weights="random"),
                              tuple(int(v) for v in ckpt["in_shape"]), int(ckpt["semantic_dim"]))
    except (TypeError, ValueError) as exc:
        raise VsbError(f"checkpoint {where} describes a model that cannot be built ({exc}); retrain the run.") from None
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise VsbError(f"checkpoint {where} does not fit a {ckpt['method']} model with {cfg.model.bits} bits: "
                       f"{_state_dict_problem(exc)}; the weights come from another model or bit length. "
                       "Retrain the run.") from None
    model.eval()
    return cfg, model, ckpt


def _state_dict_problem(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith("Error(s) in loading")]
    return (useful or lines or ["no detail"])[0].rstrip(".")[:300]


def _check_same_run(path: Path, cfg: RunConfig, ckpt: dict) -> None:
    """A checkpoint.pt copied in from another run would be evaluated as if it were this one."""
    if ckpt["method"] != cfg.model.method or int(ckpt["bits"]) != cfg.model.bits:
        raise VsbError(f"checkpoint {path / CHECKPOINT} is labelled {ckpt['method']}/{ckpt['bits']} bits but "
                       f"its configuration says {cfg.model.method}/{cfg.model.bits} bits; it is damaged. Retrain.")
    try:
        on_disk = saved_config_from_dict(load_config_file(path / CONFIG))
    except VsbError:
        return  # no readable config.yaml: the checkpoint alone describes the run
    theirs = {f"model.{k}": v for k, v in cfg.model.to_dict().items()} | {"data.dataset": cfg.data.dataset}
    ours = {f"model.{k}": v for k, v in on_disk.model.to_dict().items()} | {"data.dataset": on_disk.data.dataset}
    differ = [k for k in ours if ours[k] != theirs[k]]
    if differ:
        shown = ", ".join(f"{k} {theirs[k]!r} vs {ours[k]!r}" for k in differ[:4])
        raise VsbError(f"checkpoint {path / CHECKPOINT} comes from another run than {path / CONFIG} "
                       f"({shown}); put the run's own checkpoint back or retrain it.")


# ----------------------------------------------------------------------------- a loaded run

@dataclass
class Run:
    """A trained run directory, loaded: config, model (CPU, eval mode) and checkpoint."""

    path: Path
    cfg: RunConfig
    model: HashingMethod
    ckpt: dict
    _fingerprint: str | None = field(default=None, repr=False)

    @classmethod
    def load(cls, path: str | Path) -> Run:
        path = Path(path)
        if not path.is_dir():
            raise VsbError(f"run directory {path} does not exist; train one with `vsb2net train` or `vsb2net run`.")
        cfg, model, ckpt = _load_model(path)
        return cls(path, cfg, model, ckpt)

    # -- what it is ---------------------------------------------------------------------------------
    @property
    def bits(self) -> int:
        return int(self.cfg.model.bits)

    @property
    def method(self) -> str:
        return str(self.ckpt["method"])

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.ckpt["in_shape"])

    @property
    def class_names(self) -> list[str]:
        return list(self.ckpt["class_names"])

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = model_fingerprint(self.ckpt)
        return self._fingerprint

    def identity(self) -> dict:
        return {"fingerprint": self.fingerprint, "run": str(self.path), "method": self.method,
                "bits": self.bits, "dataset": self.cfg.data.dataset}

    def split_info(self) -> dict:
        """split.json: the seen and unseen classes and where the class vectors came from ({} if absent)."""
        return read_json(self.path / SPLIT, {}) or {}

    def metrics(self) -> dict:
        """metrics.json of ``vsb2net evaluate`` ({} before the run was evaluated)."""
        return read_json(self.path / METRICS, {}) or {}

    def class_name_quality(self) -> dict | None:
        """:func:`class_name_quality` of this run's evaluation."""
        return class_name_quality(self.metrics().get("unseen"))

    def vector_source(self) -> str:
        """Where the run's class vectors came from: "glove", "minilm", "attributes" or a file name
        (``data.class_vectors=auto`` resolved as training recorded it)."""
        source = str(self.cfg.data.class_vectors)
        if source.strip().lower() == "auto":
            source = self.split_info().get("class_vectors", source)
        return source.strip()

    # -- what it codes ------------------------------------------------------------------------------
    def image_outputs(self, images: np.ndarray | torch.Tensor) -> np.ndarray:
        """The visual branch's real-valued codes (float32 (N, bits), before the sign) of images:
        uint8 pictures (N, H, W[, 3]) or the network's input tensor.  Asymmetric search ranks with them."""
        x = images if isinstance(images, torch.Tensor) else images_to_tensor(images)
        with torch.inference_mode():
            return encode(self.model.hash_images, x, torch.device("cpu"))

    def encode_images(self, images: np.ndarray | torch.Tensor) -> np.ndarray:
        """Packed codes of images (the signs of :meth:`image_outputs`)."""
        return pack_codes(self.image_outputs(images))

    def class_outputs(self, vectors: np.ndarray) -> np.ndarray:
        """The semantic branch's real-valued codes hash_classes(v) (float32 (N, bits)) of class vectors."""
        if not self.model.codes_classes:
            raise VsbError(f"the run's method {self.method!r} has no semantic branch, so it cannot code a class "
                           "name or vector; search by --image or --code, or use a VSB2-Net run.")
        dim = int(self.ckpt["semantic_dim"])
        if vectors.ndim != 2 or vectors.shape[1] != dim:
            raise VsbError(f"class vectors have {vectors.shape[-1]} components but the run's semantic branch takes "
                           f"{dim}; give vectors of the kind the run was trained with.")
        with torch.inference_mode():
            return self.model.hash_classes(torch.from_numpy(np.asarray(vectors, np.float32))).float().numpy()

    def code_classes(self, vectors: np.ndarray) -> np.ndarray:
        """Packed semantic hash vectors sign(hash_classes(v)) of class vectors."""
        return pack_codes(self.class_outputs(vectors))

    def class_name_vectors(self, names: list[str]) -> np.ndarray:
        """Semantic vectors of class names, as the run's semantic branch expects them (unit norm).

        A name of one of the run's classes gets the exact vector the run used (class_vectors.npy);
        any other name is looked up in GloVe, which works only for runs trained on GloVe vectors.
        """
        from .data.semantics import glove_vectors

        known = {n.strip().lower(): i for i, n in enumerate(self.class_names)}
        saved = self.path / CLASS_VECTORS
        run_vectors = np.load(saved, allow_pickle=False) if saved.is_file() else None
        source = self.vector_source()
        out = []
        for name in names:
            i = known.get(name.strip().lower())
            if i is not None and run_vectors is not None and i < len(run_vectors):
                out.append(np.asarray(run_vectors[i], np.float32))
            elif source.lower() == "glove":
                out.append(glove_vectors([name])[0])
            else:
                raise VsbError(f"class {name!r} is not one of the run's classes, and the run's class vectors come "
                               f"from {source}, not GloVe; give its vector with --class-vector FILE.")
        return np.stack(out).astype(np.float32)

    def class_name_outputs(self, names: list[str]) -> np.ndarray:
        return self.class_outputs(self.class_name_vectors(names))

    def code_class_names(self, names: list[str]) -> np.ndarray:
        return pack_codes(self.class_name_outputs(names))

    def text_vectors(self, texts: list[str]) -> np.ndarray:
        """Free text in the run's class-vector space (:func:`vsb2net.data.semantics.text_vectors`)."""
        from .data.semantics import text_vectors

        return text_vectors(self.vector_source(), texts)

    def text_outputs(self, texts: list[str]) -> np.ndarray:
        return self.class_outputs(self.text_vectors(texts))

    def code_text(self, texts: list[str]) -> np.ndarray:
        return pack_codes(self.text_outputs(texts))
