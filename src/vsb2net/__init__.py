"""vsb2net: zero-shot hashing with VSB2-Net (Visual-Semantic Bi-Branch Network, ICPR 2020)."""

__version__ = "0.1.0"
