import gc

from training.cli import main

status = main()
gc.freeze()  # the process ends now: skip the final collection's walk (training/cli.py's docstring)
raise SystemExit(status)
