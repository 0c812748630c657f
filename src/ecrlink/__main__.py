"""``python -m ecrlink``: the same as the ``ecrlink`` command."""

from .cli import main

if __name__ == "__main__":
    main()
