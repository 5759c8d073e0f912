"""``python -m bayescale``: the ``bayescale`` command."""

from bayescale.report.cli import run

if __name__ == "__main__":
    run()
