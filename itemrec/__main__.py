"""`python -m itemrec ...` (and `torchrun ... -m itemrec train CONFIG`): the `itemrec` command line."""

from itemrec.cli import main

main()
