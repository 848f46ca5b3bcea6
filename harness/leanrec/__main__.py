"""`python -m leanrec ...` runs the command line, the same as the `leanrec` script."""
from leanrec.cli import main

if __name__ == "__main__":
    main()
