"""``python -m cronica``: the same as the ``cronica`` command."""

from cronica.cli import main

if __name__ == "__main__":
    main()
