"""`python -m ecosms_gw`: the same command line as `ecosms-gw`."""

from ecosms_gw.cli import main

raise SystemExit(main())
