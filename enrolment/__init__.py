"""Enrolment: add, list and remove people over HTTP; every change publishes a new model version.

The project's third deployable, beside ``app`` (serve and classify) and ``training`` (the
command that turns folders into artifacts), and built on both. A separate service (the
"trainer") owns a writable store of who is enrolled and the artifacts folder it publishes
into; the classify service (``app``) only reads that folder and swaps in whatever ``LATEST``
names. See docs/enrolment.md.
"""
