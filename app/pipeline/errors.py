"""Errors raised by the pipeline for input that cannot be processed.

They carry no HTTP knowledge; the API maps each one to a status code, so the
training CLI can use the same stages and report the same reasons.
"""


class ImageError(Exception):
    """Base class: the input is not an image this service can process."""


class UndecodableImage(ImageError):
    """The bytes claim to be (or might be) an image but cannot be decoded."""


class UnsupportedImageType(ImageError):
    """The bytes are a format the service does not accept (SVG, PDF, text...)."""


class ImageTooLarge(ImageError):
    """The image declares more pixels than the configured limit."""
