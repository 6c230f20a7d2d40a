"""``python -m convviz ...``: see :mod:`convviz.cli`."""

from convviz.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
