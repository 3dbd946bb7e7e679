"""`python -m payrelay.contract [--check] DIR`: as `payrelay contract`, without typer."""

from __future__ import annotations

import sys
from pathlib import Path

from payrelay.contract import REGENERATE, drift, generate_documents, write_documents


def main(argv: list[str]) -> int:
    check = "--check" in argv
    directory = Path(([a for a in argv if not a.startswith("--")] or ["docs/contract"])[0])
    if check:
        problems = drift(directory)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print(f"run `{REGENERATE}`", file=sys.stderr)
        return 1 if problems else 0
    for path in write_documents(directory, generate_documents()):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
