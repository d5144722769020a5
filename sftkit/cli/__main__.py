"""`python -m sftkit.cli` (what torchrun launches)."""

from sftkit.cli import main

main()
