from training.enrolment.cli import main

raise SystemExit(main())
