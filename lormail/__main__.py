"""``python -m lormail``: the same entry point as the ``lormail`` script."""

from lormail.cli import run

if __name__ == "__main__":
    run()
