"""Reading medical and ordinary images into display-ready pixels: ``read_image`` -> ``LoadedImage``."""

from sahay.imaging.reader import LoadedImage, read_image

__all__ = ["LoadedImage", "read_image"]
