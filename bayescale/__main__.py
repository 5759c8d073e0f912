"""``python -m bayescale``: the ``bayescale`` command."""

import sys

from bayescale.report.cli import main

if __name__ == "__main__":
    sys.exit(main())
