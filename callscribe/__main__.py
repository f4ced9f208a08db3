"""``python -m callscribe``: the same as the ``callscribe`` command (tests start real processes this way)."""

from .cli import main

raise SystemExit(main())
