"""`python -m leanrec ...` (and `torchrun ... -m leanrec run ...`): the leanrec command line."""
from leanrec.cli import app

app()
