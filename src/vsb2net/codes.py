"""Binary hash codes: packing, unpacking, Hamming distances, hex strings.

Conventions used everywhere in vsb2net:

* A K-bit code is produced from a real vector ``x`` by the rule **bit = 1 where x >= 0, else 0**.
  Zero maps to 1, which is the same as taking ``sign`` with ``sign(0) = +1``; in the +-1 view,
  bit 1 is ``+1`` and bit 0 is ``-1``.
* K must be a multiple of 8.  Codes are stored packed, ``uint8`` arrays of shape ``(N, K // 8)``,
  made by :func:`numpy.packbits` with its default **big-endian bit order within each byte**:
  bit 0 of the code is the most significant bit of byte 0.
* Hamming distances are integers in ``0..K`` (``uint16``, or ``uint32`` for K > 65535).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from vsb2net.errors import VsbError

__all__ = [
    "to_numpy",
    "pack_codes",
    "unpack_codes",
    "hamming_distances",
    "codes_to_hex",
    "hex_to_codes",
]



def to_numpy(x: Any) -> np.ndarray:
    """Return ``x`` as a numpy array; a torch tensor is detached and copied to the CPU.

    Torch is detected by duck typing so that importing this module does not import torch.
    """
    if hasattr(x, "detach") and hasattr(x, "cpu") and hasattr(x, "numpy"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _check_bits(bits: int, what: str = "bits") -> int:
    if isinstance(bits, (bool, np.bool_)) or not isinstance(bits, (int, np.integer)):
        raise VsbError(f"{what} must be a positive integer multiple of 8, got {bits!r}.")
    bits = int(bits)
    if bits <= 0 or bits % 8 != 0:
        raise VsbError(
            f"{what} must be a positive multiple of 8 (codes are packed into bytes), got {bits}; "
            "use a code length such as 16, 32, 48 or 64."
        )
    return bits


def _check_packed(packed: Any, name: str) -> np.ndarray:
    """Validate a packed code matrix: 2-D ``uint8`` with at least one byte per row."""
    arr = to_numpy(packed)
    if arr.dtype != np.uint8:
        raise VsbError(
            f"{name} must be packed codes of dtype uint8, got dtype {arr.dtype}; "
            "pack real-valued codes with vsb2net.codes.pack_codes."
        )
    if arr.ndim != 2:
        raise VsbError(
            f"{name} must be a 2-D array (n_codes, bits // 8), got shape {arr.shape}; "
            "reshape a single code with code[None, :]."
        )
    if arr.shape[1] == 0:
        raise VsbError(f"{name} has zero bytes per code (shape {arr.shape}); codes need >= 8 bits.")
    return arr


def pack_codes(x: Any) -> np.ndarray:
    """Binarise real codes and pack them into bytes.

    Parameters
    ----------
    x : array-like or torch.Tensor, shape (N, K)
        Real-valued codes (e.g. tanh outputs or +-1 codes).  K must be a multiple of 8.

    Returns
    -------
    np.ndarray of uint8, shape (N, K // 8)
        Bit = 1 where ``x >= 0`` (so 0 maps to 1, like ``sign`` with ``sign(0) = +1``), packed
        big-endian within each byte (:func:`numpy.packbits` default).

    Raises
    ------
    VsbError
        If ``x`` is not 2-D, K is not a positive multiple of 8, ``x`` is boolean (ambiguous: a
        0/1 array would map entirely to 1) or ``x`` contains NaN.
    """
    arr = to_numpy(x)
    if arr.ndim != 2:
        raise VsbError(
            f"pack_codes expects a 2-D array (n_codes, bits), got shape {arr.shape}; "
            "reshape a single code with x[None, :]."
        )
    if arr.dtype == np.bool_:
        raise VsbError(
            "pack_codes got a boolean array, which is ambiguous under the rule bit = (x >= 0); "
            "pass +-1 / real-valued codes, or pack booleans directly with np.packbits(b, axis=1)."
        )
    if not (np.issubdtype(arr.dtype, np.number)) or np.iscomplexobj(arr):
        raise VsbError(f"pack_codes expects real numbers, got dtype {arr.dtype}.")
    _check_bits(arr.shape[1], what="code length (x.shape[1])")
    if np.issubdtype(arr.dtype, np.floating) and np.isnan(arr).any():
        raise VsbError(
            "pack_codes got NaN values, which have no sign; check the model outputs for NaN "
            "(e.g. a diverged training run)."
        )
    return np.packbits(arr >= 0, axis=1)


def unpack_codes(packed: Any, bits: int) -> np.ndarray:
    """Unpack codes made by :func:`pack_codes` into a +-1 matrix.

    Returns an ``int8`` array of shape (N, bits) with values in {-1, +1} (bit 1 -> +1).
    """
    bits = _check_bits(bits)
    arr = _check_packed(packed, "packed")
    if arr.shape[1] * 8 != bits:
        raise VsbError(
            f"packed codes have {arr.shape[1]} bytes per code ({arr.shape[1] * 8} bits) but "
            f"bits={bits}; pass bits={arr.shape[1] * 8} or the matching codes."
        )
    unpacked = np.unpackbits(arr, axis=1, count=bits).astype(np.int8)
    return unpacked * np.int8(2) - np.int8(1)


def _popcount(a: np.ndarray, out: np.ndarray) -> np.ndarray:
    return np.bitwise_count(a, out=out)  # numpy >= 2.0, the declared floor


def hamming_distances(q_packed: Any, db_packed: Any) -> np.ndarray:
    """All-pairs Hamming distances between packed code sets.

    Parameters
    ----------
    q_packed : uint8 array, shape (Q, B)
    db_packed : uint8 array, shape (N, B)
        Packed codes with the same number of bytes B per code.

    Returns
    -------
    np.ndarray, shape (Q, N)
        Distances in ``0..8B``, dtype ``uint16`` (``uint32`` if 8B > 65535).

    Notes
    -----
    When B is a multiple of 8 the rows are viewed as ``uint64`` words, otherwise as bytes; the
    distance is the popcount (:func:`numpy.bitwise_count`) of the XOR, accumulated word by word
    so that the only temporaries are (Q, N) matrices.  Memory is O(Q * N * word size): callers
    with large query sets should pass queries in chunks.
    """
    q = _check_packed(q_packed, "query codes")
    db = _check_packed(db_packed, "database codes")
    if q.shape[1] != db.shape[1]:
        raise VsbError(
            f"query codes have {q.shape[1]} bytes ({q.shape[1] * 8} bits) per code but database "
            f"codes have {db.shape[1]} bytes ({db.shape[1] * 8} bits); both sides must be "
            "encoded with the same code length."
        )
    n_bytes = q.shape[1]
    out_dtype = np.uint16 if n_bytes * 8 <= np.iinfo(np.uint16).max else np.uint32
    dist = np.zeros((q.shape[0], db.shape[0]), dtype=out_dtype)
    if q.shape[0] == 0 or db.shape[0] == 0:
        return dist

    word = np.uint64 if n_bytes % 8 == 0 else np.uint8
    qw = np.ascontiguousarray(q).view(word)
    # Transposed so that each word's column over the database is contiguous.
    dbw_t = np.ascontiguousarray(np.ascontiguousarray(db).view(word).T)
    xor_buf = np.empty(dist.shape, dtype=word)
    cnt_buf = np.empty(dist.shape, dtype=np.uint8)
    for w in range(qw.shape[1]):
        np.bitwise_xor(qw[:, w, None], dbw_t[w][None, :], out=xor_buf)
        _popcount(xor_buf, out=cnt_buf)
        dist += cnt_buf
    return dist


def codes_to_hex(packed_row: Any) -> str:
    """Hex string of one packed code (2 hex digits per byte, byte 0 first).

    Accepts a 1-D uint8 array of shape (B,) or a single-row (1, B) array.
    """
    arr = to_numpy(packed_row)
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1 or arr.dtype != np.uint8 or arr.size == 0:
        raise VsbError(
            f"codes_to_hex expects one packed code, a 1-D uint8 array, got dtype {arr.dtype} "
            f"and shape {arr.shape}; pack it with pack_codes and pass one row."
        )
    return arr.tobytes().hex()


def hex_to_codes(hex_string: str, bits: int) -> np.ndarray:
    """Inverse of :func:`codes_to_hex`: a 1-D uint8 array of shape (bits // 8,)."""
    bits = _check_bits(bits)
    if not isinstance(hex_string, str):
        raise VsbError(f"hex code must be a string, got {type(hex_string).__name__}.")
    # inner spaces ("ad a3 9d b0") are refused below, by name: bytes.fromhex would skip them and
    # change the byte count
    s = hex_string.strip()
    if s[:2].lower() == "0x":
        s = s[2:]
    bad = sorted({c for c in s if c not in "0123456789abcdefABCDEF"})
    if bad:
        shown = ", ".join(repr(c) for c in bad[:5]) + (", ..." if len(bad) > 5 else "")
        raise VsbError(f"hex code {hex_string[:80]!r} is not a valid hex string: {shown} "
                       f"{'is not a hex digit' if len(bad) == 1 else 'are not hex digits'} (only 0-9, a-f allowed).")
    if len(s) != bits // 4:
        raise VsbError(
            f"hex code {hex_string[:80]!r} has {len(s)} hex digits but a {bits}-bit code needs "
            f"{bits // 4}; check the code length."
        )
    raw = bytes.fromhex(s)
    return np.frombuffer(raw, dtype=np.uint8).copy()


def hexes_to_codes(hexes: list[str], bits: int) -> np.ndarray:
    """Packed codes (n, bits // 8) of hex strings (:func:`hex_to_codes` of each)."""
    return np.stack([hex_to_codes(h, bits) for h in hexes])


def padded_bytes(n_bytes: int) -> int:
    """Code size with a fast faiss popcount kernel: 4 bytes, or a multiple of 8.

    faiss counts 4- and 8-byte words with one popcount each but falls back to a byte loop for
    other lengths (48-bit codes are about 4x faster padded to 64 bits).
    """
    return 4 if n_bytes <= 4 else -(-n_bytes // 8) * 8


def pad_codes(codes: np.ndarray, n_bytes: int | None = None) -> np.ndarray:
    """Packed codes with zero bytes appended up to ``n_bytes`` (default :func:`padded_bytes`).

    Hamming distances are unchanged: a zero byte on both sides adds nothing.
    """
    n_bytes = padded_bytes(codes.shape[1]) if n_bytes is None else n_bytes
    if n_bytes == codes.shape[1]:
        return codes
    out = np.zeros((len(codes), n_bytes), dtype=np.uint8)
    out[:, :codes.shape[1]] = codes
    return out

