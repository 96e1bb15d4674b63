from enrolment.cli import main

raise SystemExit(main())
