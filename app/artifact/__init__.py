"""A model version on disk: what its manifest says (``manifest``), what its files are called (``file_names``).

Training writes versions and serving reads them, both through this package, so the format
is defined once. The loader verifies every file against the manifest's sha256.
"""
