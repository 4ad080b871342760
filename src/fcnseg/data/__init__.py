"""Data: dataset layouts and descriptions, decoding with checks, paired transforms, loaders."""

from fcnseg.data.dataset import SegmentationDataset
from fcnseg.data.info import DATASET1, DatasetInfo
from fcnseg.data.layout import DatasetLayout, Sample, open_dataset
from fcnseg.data.scan import SplitScan, median_frequency_weights, rare_classes, scan_split

__all__ = [
    "DATASET1",
    "DatasetInfo",
    "DatasetLayout",
    "Sample",
    "SegmentationDataset",
    "SplitScan",
    "median_frequency_weights",
    "rare_classes",
    "open_dataset",
    "scan_split",
]
