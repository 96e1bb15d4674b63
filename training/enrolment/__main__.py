"""``python -m training.enrolment``: the old name of ``python -m enrolment``, kept for one release."""

from enrolment.cli import main

raise SystemExit(main())
