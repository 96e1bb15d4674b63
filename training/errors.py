"""The one error a training run answers with a one-line message and exit status 2."""


class TrainingInputError(ValueError):
    """The data folder or the options cannot train a model; the message says why and what to do."""
