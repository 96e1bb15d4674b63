"""``python -m app cluster``: group the faces of a photo archive that the served model cannot name.

``faces`` finds every face once on the batch engines (``app.batch``), ``grouping`` groups
embeddings by identity, ``people`` places each face (known, in a group, or alone), ``output``
writes the folders, ``groups.jsonl`` and the page, and ``command`` runs them in turn.
"""
