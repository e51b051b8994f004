"""`python -m cli ...` runs the `omnimedia` command."""

from cli.main import app

app()
