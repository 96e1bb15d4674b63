"""The model that answers: one photo in, every face with its label out (``recognizer``).

``unknown`` is the open-set rule, ``host`` loads, warms and swaps the version a service or a
batch job serves. The stages come from ``app.pipeline``, the classifiers from ``app.backends``
and the version's files from ``app.artifact``.
"""
