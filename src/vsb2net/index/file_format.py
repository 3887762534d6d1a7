"""The index file: writing and validated reading (``HammingIndex.save`` / ``load`` call these).

File format (``save``/``load``), little-endian::

    8 bytes   magic b"VSB2HIX\\n"
    4 bytes   header length H (uint32)
    H bytes   header, UTF-8 JSON: format, version, bits, backend, backend_params, model,
              count, info, and for each section (ids, metadata, payload) its length and SHA-256
    sections  ids (count x int64), metadata (UTF-8 JSON list), payload (the backend's bytes:
              faiss.serialize_index_binary output; empty for Milvus, whose data lives on the server)

``load`` checks the magic, the header, the expected bit length and model, the file length and
every checksum before the payload reaches faiss: faiss's deserialiser trusts its input, so a
damaged file must never get that far.  Nothing is unpickled.
"""
from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

from vsb2net.errors import VsbError
from vsb2net.io import atomic_path

from .backend import backend_names

MAGIC = b"VSB2HIX\n"
FORMAT = "vsb2net-hamming-index"
VERSION = 1
SUFFIX = ".vsbidx"
# A header is a few hundred bytes; anything far larger is not a header of ours.
MAX_HEADER = 1 << 20
SECTIONS = ("ids", "metadata", "payload")


def write_index_file(path: Path, header: dict, sections: dict[str, bytes]) -> Path:
    """Write ``header`` (with each section's length and SHA-256 added) and the sections atomically
    (a reader never sees a half-written file)."""
    header = {**header, "format": FORMAT, "version": VERSION,
              "sections": {name: {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                           for name, data in sections.items()}}
    head = json.dumps(header, sort_keys=True).encode("utf-8")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(MAGIC)
            fh.write(struct.pack("<I", len(head)))
            fh.write(head)
            for name in SECTIONS:
                fh.write(sections[name])
    return path


def _fingerprint_of(model: str | dict | None) -> str | None:
    if isinstance(model, dict):
        return model.get("fingerprint")
    return model


def read_index_file(path: Path, *, bits: int | None = None, model: str | dict | None = None) -> tuple[dict, dict]:
    """Validated (header, sections) of an index file; raises VsbError on any mismatch or damage."""
    rebuild = "rebuild it with `vsb2net index build`."
    if not path.is_file():
        raise VsbError(f"index file {path} does not exist; build one with `vsb2net index build RUN_DIR ...` "
                       "(it prints where it wrote the index).")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        magic = fh.read(len(MAGIC))
        if magic != MAGIC:
            raise VsbError(f"{path} is not a vsb2net index (it does not start with {MAGIC!r}); give a file "
                           "written by `vsb2net index build`.")
        raw_len = fh.read(4)
        if len(raw_len) < 4:
            raise VsbError(f"index {path} is truncated (it ends inside the header); {rebuild}")
        (head_len,) = struct.unpack("<I", raw_len)
        if head_len > MAX_HEADER:
            raise VsbError(f"index {path} is damaged (header length {head_len} bytes is implausible); {rebuild}")
        head = fh.read(head_len)
        if len(head) < head_len:
            raise VsbError(f"index {path} is truncated (it ends inside the header); {rebuild}")
        try:
            header = json.loads(head.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise VsbError(f"index {path} is damaged (its header is not valid JSON); {rebuild}") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            found = header.get("format") if isinstance(header, dict) else None
            raise VsbError(f"{path} is not a vsb2net index (header format {found!r}); {rebuild}")
        if header.get("version") != VERSION:
            raise VsbError(f"index {path} has format version {header.get('version')!r}; this vsb2net reads version "
                           f"{VERSION}; {rebuild}")
        _check_header_fields(header, path, rebuild)
        if bits is not None and header["bits"] != int(bits):
            raise VsbError(f"index {path} holds {header['bits']}-bit codes but the run codes queries with {bits} "
                           f"bits; use an index built from this run, or {rebuild}")
        want = _fingerprint_of(model)
        have = _fingerprint_of(header.get("model"))
        if want is not None and have != want:
            made_by = header.get("model") or {}
            origin = f" (run {made_by.get('run')})" if isinstance(made_by, dict) and made_by.get("run") else ""
            raise VsbError(f"index {path} was built with another model{origin}, fingerprint {have}, not this run's "
                           f"{want}; codes of different models are not comparable. Use the run that built it, "
                           f"or {rebuild}")
        secs = header["sections"]
        body = head_len + len(MAGIC) + 4
        expected = body + sum(secs[name]["length"] for name in SECTIONS)
        if size != expected:
            state = "truncated" if size < expected else "longer than its header says"
            raise VsbError(f"index {path} is {state} ({size} bytes, expected {expected}); {rebuild}")
        sections = {}
        for name in SECTIONS:
            data = fh.read(secs[name]["length"])
            if hashlib.sha256(data).hexdigest() != secs[name]["sha256"]:
                raise VsbError(f"index {path} is corrupt (checksum of its {name} section does not match); {rebuild}")
            sections[name] = data
    if header["backend"] not in backend_names():
        raise VsbError(f"index {path} uses backend {header['backend']!r}, which this vsb2net does not know "
                       f"(known: {', '.join(backend_names())}).")
    return header, sections


def _check_header_fields(header: dict, path: Path, rebuild: str) -> None:
    def bad(what: str) -> VsbError:
        return VsbError(f"index {path} is damaged ({what}); {rebuild}")

    b = header.get("bits")
    if isinstance(b, bool) or not isinstance(b, int) or b <= 0 or b % 8:
        raise bad(f"bits = {b!r}")
    c = header.get("count")
    if isinstance(c, bool) or not isinstance(c, int) or c < 0:
        raise bad(f"count = {c!r}")
    if not isinstance(header.get("backend"), str):
        raise bad("no backend name")
    secs = header.get("sections")
    if not isinstance(secs, dict) or any(
            not isinstance(secs.get(name), dict)
            or not isinstance(secs[name].get("length"), int) or secs[name]["length"] < 0
            or not isinstance(secs[name].get("sha256"), str) for name in SECTIONS):
        raise bad("section table missing or malformed")
    if secs["ids"]["length"] != 8 * c:
        raise bad(f"{secs['ids']['length']} bytes of ids for {c} codes")
    if header.get("model") is not None and not isinstance(header["model"], dict):
        raise bad("model entry is not an object")
