"""fcnseg: semantic segmentation with Fully Convolutional Networks (Long et al., 2015)."""

__version__ = "0.1.0"
