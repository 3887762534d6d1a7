"""Datasets and class semantic vectors.

Importing this package imports every dataset module, which registers its loader; use
:func:`load_dataset` and :func:`list_datasets` rather than the loader functions directly.
"""
from vsb2net.data import arrays as _arrays  # noqa: F401  (registers the npy directory dataset)
from vsb2net.data import cifar as _cifar  # noqa: F401  (registers the datasets)
from vsb2net.data import image_folder as _image_folder  # noqa: F401  (registers the datasets)
from vsb2net.data import mnist_like as _mnist_like  # noqa: F401  (registers the datasets)
from vsb2net.data import nuswide as _nuswide  # noqa: F401  (registers the dataset)
from vsb2net.data import xlsa17 as _xlsa17  # noqa: F401  (registers the datasets)
from vsb2net.data.base import Dataset, DatasetInfo, get_dataset_info, list_datasets, load_dataset, register_dataset
from vsb2net.data.idx import load_idx_split_dir, read_idx, write_idx
from vsb2net.data.semantics import class_vectors, glove_tokens, glove_vectors, load_class_vectors

__all__ = [
    "Dataset",
    "DatasetInfo",
    "class_vectors",
    "get_dataset_info",
    "glove_tokens",
    "glove_vectors",
    "list_datasets",
    "load_class_vectors",
    "load_dataset",
    "load_idx_split_dir",
    "read_idx",
    "register_dataset",
    "write_idx",
]
