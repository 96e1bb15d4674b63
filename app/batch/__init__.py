"""``python -m app classify``: the served model over a whole folder or photo store, into rows.

``command`` parses nothing itself: ``app.__main__`` declares the arguments (``options``
adds the engine's) and ``command.main`` runs the engine asked for. Both engines classify
each photo and write its rows with ``rows``; ``local`` runs threads on this machine,
``ray_engine`` a Ray cluster (the optional ``ray`` extra, imported only when asked for).
"""
