"""`python -m evaluator` runs the `necessity` command."""

from __future__ import annotations

from evaluator.cli.main import main

if __name__ == "__main__":
    main(prog_name="necessity")
