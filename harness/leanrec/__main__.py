"""`python -m leanrec ...` (and `torchrun ... -m leanrec run ...`): the leanrec command line, the same as the
`leanrec` script (user errors print as one line)."""
from leanrec.cli import main

if __name__ == "__main__":
    main()
