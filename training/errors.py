"""The one error a training run answers with a one-line message and exit status 2."""

from app.labelled.folders import DatasetError


class TrainingInputError(DatasetError):
    """The data folder or the options cannot train a model; the message says why and what to do.

    A ``DatasetError`` from the shared folder scan is the same kind of failure, so the CLI
    answers both the same way by catching the base class.
    """
