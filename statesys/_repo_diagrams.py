"""``python -m statesys._repo_diagrams``: regenerate the repository's ``diagrams/``."""

from __future__ import annotations

from pathlib import Path

from .diagram import write_repository_diagrams

if __name__ == "__main__":
    for path in write_repository_diagrams(Path.cwd()):
        print(path)
