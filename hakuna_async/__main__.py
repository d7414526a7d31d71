"""Run the command line: ``python -m hakuna_async``."""

from ._cli import main

raise SystemExit(main())
