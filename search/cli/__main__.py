"""`python -m search.cli`: how --jobs starts its workers (workers.py)."""

from search.cli import main

main()
