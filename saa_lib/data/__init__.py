"""Data sets: one :class:`Sample` record for MVTec AD, VisA, KSDD2, MTD, folders and the synthetic set.

Example::

    ds = open_dataset("synthetic")             # data/synthetic, generated on first use
    s = ds.samples("washer")[0]
    s.load_image(), s.load_mask()              # (H, W, 3) uint8 RGB, (H, W) bool
"""
from .archive import DATASETS, DatasetSource, download_dataset, extract_archive
from .datasets import (DATASET_NAMES, TABLES, VISA_CATEGORIES, AnomalyDataset, default_root, open_dataset,
                       prepare_visa)
from .sample import IMAGE_EXTENSIONS, DatasetError, Sample, read_image, read_mask
from .synthetic import SYNTHETIC_CATEGORIES, STAIN_THRESHOLD, SyntheticImage, generate_synthetic, synthesize

__all__ = [
    "DATASETS", "DATASET_NAMES", "IMAGE_EXTENSIONS", "STAIN_THRESHOLD", "SYNTHETIC_CATEGORIES", "TABLES",
    "VISA_CATEGORIES", "AnomalyDataset", "DatasetError", "DatasetSource", "Sample", "SyntheticImage",
    "default_root", "download_dataset", "extract_archive", "generate_synthetic", "open_dataset", "prepare_visa",
    "read_image", "read_mask", "synthesize",
]
