"""``python -m klom_utils``: the ``klom`` command line."""

from .cli import main

raise SystemExit(main())
