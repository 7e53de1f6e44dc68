"""Datasets as uint8 tensors on the device, with the original code's normalisation, splits and augmentation.

Entry points: :func:`load_dataset`, :func:`dataset_info`, :func:`normalize`, :func:`data_range`,
:func:`train_valid_split`, :func:`iterate_batches`, :func:`augment` / :func:`augmentation_for`.
"""
from .augment import AUGMENTATIONS, augment, augmentation_for, flip_crop
from .download import Checksum, ChecksumError, DownloadError, download_file, verify_file
from .info import DATASET_NAMES, DatasetInfo, canonical_name, dataset_info
from .registry import SPLITS, default_data_dir, load_dataset
from .tensors import Split, data_range, iterate_batches, normalize, train_valid_split

__all__ = [
    "AUGMENTATIONS", "Checksum", "ChecksumError", "DATASET_NAMES", "DatasetInfo", "DownloadError", "SPLITS",
    "Split", "augment", "augmentation_for", "canonical_name", "data_range", "dataset_info", "default_data_dir",
    "download_file", "flip_crop", "iterate_batches", "load_dataset", "normalize", "train_valid_split",
    "verify_file",
]
