"""The worker process's ``__main__``: ``python -m runtime._worker_main`` (kept apart from :mod:`runtime._node`,
which the package imports, so that running it does not import it twice)."""

import sys

from runtime._node import main

if __name__ == "__main__":
    sys.exit(main())
