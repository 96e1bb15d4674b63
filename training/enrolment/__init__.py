"""Moved: the trainer service is the top-level package ``enrolment`` (``python -m enrolment``).

``python -m training.enrolment`` still runs it, for one release; the old name then goes.
"""
