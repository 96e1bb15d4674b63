"""hobbit-classifier: a face-classification service.

A photo goes in; every face in it comes out with a label ("unknown" when it is
none of the known people) and a probability per class.
"""

from importlib import metadata

#: The installed distribution's version (pyproject.toml is its one source); the API reports it.
__version__ = metadata.version("hobbit-classifier")
