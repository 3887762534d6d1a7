"""Tests for vsb2net.codes: packing rule, bit order, Hamming distances, hex helpers."""
import numpy as np
import pytest
import torch

from vsb2net import codes
from vsb2net.codes import codes_to_hex, hamming_distances, hex_to_codes, pack_codes, unpack_codes
from vsb2net.errors import VsbError


def naive_hamming(q_pm1, db_pm1):
    """Reference: count differing +-1 entries pair by pair."""
    return np.array([[int((a != b).sum()) for b in db_pm1] for a in q_pm1])


def test_pack_rule_zero_maps_to_one_and_big_endian_bit_order():
    """x >= 0 gives bit 1 (0 included); bit 0 of the code is the MSB of byte 0."""
    x = np.array([[0.0, -1, -1, -1, -1, -1, -1, -0.5,  # byte 0: 1000 0000
                   -2, -2, -2, -2, -2, -2, -2, 3.0]])  # byte 1: 0000 0001
    packed = pack_codes(x)
    assert packed.dtype == np.uint8
    assert packed.tolist() == [[0b10000000, 0b00000001]]


@pytest.mark.parametrize("bits", [16, 32, 48, 64])
def test_pack_unpack_roundtrip(bits):
    """unpack(pack(x)) gives sign(x) with sign(0) = +1, as int8 +-1."""
    rng = np.random.default_rng(bits)
    x = rng.standard_normal((13, bits))
    x[0, :5] = 0.0
    packed = pack_codes(x)
    assert packed.shape == (13, bits // 8)
    unpacked = unpack_codes(packed, bits)
    assert unpacked.dtype == np.int8
    assert np.array_equal(unpacked, np.where(x >= 0, 1, -1))
    assert np.array_equal(pack_codes(unpacked), packed)


def test_pack_accepts_torch_tensor():
    """A torch tensor (even one requiring grad) packs like its numpy values."""
    x = torch.randn(5, 32, requires_grad=True)
    assert np.array_equal(pack_codes(x), pack_codes(x.detach().numpy()))


@pytest.mark.parametrize("bad", [np.zeros((3, 12)), np.zeros((3, 0)), np.zeros(16)])
def test_pack_rejects_bad_shapes(bad):
    """Code lengths not a positive multiple of 8, and 1-D input, are user errors."""
    with pytest.raises(VsbError):
        pack_codes(bad)


def test_pack_rejects_nan_and_bool():
    """NaN has no sign; booleans are ambiguous under bit = (x >= 0)."""
    x = np.zeros((2, 8))
    x[1, 3] = np.nan
    with pytest.raises(VsbError, match="NaN"):
        pack_codes(x)
    with pytest.raises(VsbError, match="boolean"):
        pack_codes(np.zeros((2, 8), dtype=bool))


def test_unpack_validates_bits():
    """bits must be a multiple of 8 and match the packed width."""
    packed = pack_codes(np.ones((2, 16)))
    with pytest.raises(VsbError):
        unpack_codes(packed, 12)
    with pytest.raises(VsbError):
        unpack_codes(packed, 24)
    with pytest.raises(VsbError):
        unpack_codes(packed.astype(np.int16), 16)


@pytest.mark.parametrize("bits", [8, 16, 48, 64, 128, 72])
def test_hamming_matches_naive(bits):
    """Both the uint64-word path (bytes % 8 == 0) and the byte path agree with a naive count."""
    rng = np.random.default_rng(100 + bits)
    q = np.where(rng.standard_normal((7, bits)) >= 0, 1, -1)
    db = np.where(rng.standard_normal((11, bits)) >= 0, 1, -1)
    db[0] = q[0]
    db[1] = -q[0]
    d = hamming_distances(pack_codes(q), pack_codes(db))
    assert d.dtype == np.uint16
    assert d.shape == (7, 11)
    assert np.array_equal(d, naive_hamming(q, db))
    assert d[0, 0] == 0 and d[0, 1] == bits


def test_hamming_non_contiguous_and_empty():
    """Strided views are handled; an empty query set gives an empty (0, N) matrix."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((10, 64))
    packed = pack_codes(x)
    pm1 = np.where(x >= 0, 1, -1)
    assert np.array_equal(hamming_distances(packed[::3], packed[1::2]), naive_hamming(pm1[::3], pm1[1::2]))
    assert hamming_distances(packed[:0], packed).shape == (0, 10)


def test_hamming_validates_inputs():
    """Different code lengths, non-uint8 and 1-D inputs raise VsbError."""
    a = pack_codes(np.ones((2, 16)))
    b = pack_codes(np.ones((2, 24)))
    with pytest.raises(VsbError, match="bits"):
        hamming_distances(a, b)
    with pytest.raises(VsbError, match="uint8"):
        hamming_distances(a.astype(np.int64), a)
    with pytest.raises(VsbError, match="2-D"):
        hamming_distances(a[0], a)


def test_hex_roundtrip_and_known_value():
    """codes_to_hex writes byte 0 first; hex_to_codes inverts it (0x prefix and case allowed)."""
    code = np.array([0x80, 0xFF, 0x01], dtype=np.uint8)
    assert codes_to_hex(code) == "80ff01"
    assert codes_to_hex(code[None, :]) == "80ff01"
    assert np.array_equal(hex_to_codes("80ff01", 24), code)
    assert np.array_equal(hex_to_codes("0x80FF01", 24), code)
    rng = np.random.default_rng(3)
    packed = pack_codes(rng.standard_normal((5, 48)))
    for row in packed:
        assert np.array_equal(hex_to_codes(codes_to_hex(row), 48), row)


@pytest.mark.parametrize("text,bits", [("80ff", 24), ("80fg01", 24), ("80 ff 01", 24), ("8 ff", 16), ("80ff", 12)])
def test_hex_to_codes_rejects_bad_strings(text, bits):
    """Wrong length, non-hex characters, spaces, and bad bit counts are user errors."""
    with pytest.raises(VsbError):
        hex_to_codes(text, bits)


def test_codes_to_hex_rejects_matrix():
    """Only one code at a time."""
    with pytest.raises(VsbError):
        codes_to_hex(np.zeros((2, 2), dtype=np.uint8))
    with pytest.raises(VsbError):
        codes_to_hex(np.zeros(2, dtype=np.int32))


def test_to_numpy_passthrough():
    """Non-tensor inputs become numpy arrays unchanged."""
    assert isinstance(codes.to_numpy([1, 2]), np.ndarray)
