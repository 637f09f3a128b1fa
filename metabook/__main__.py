"""``python -m metabook`` runs the command line (see :mod:`metabook.cli`)."""

from metabook.cli import main

raise SystemExit(main())
