"""``python -m specml``: the same entry point as the ``specml`` command."""

from specml.cli import main

if __name__ == "__main__":
    main()
