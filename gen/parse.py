"""Read ops.def and methods.def into blocks of (key, value, line) items.

Both files share one line-oriented format: an entry starts at column 0 with
a keyword and a head (``op read``, ``method IoUring.submit() -> int``); its
fields follow on indented lines as ``key value``.  Blank lines and lines
whose first non-blank character is '#' are ignored.  No semantics here:
the model (model.py) validates and names every error by file and line.
"""

from typing import List, NamedTuple


class DefError(Exception):
    """A malformed definition: reported as 'path:line: message'."""

    def __init__(self, path: str, lineno: int, message: str) -> None:
        super().__init__("%s:%d: %s" % (path, lineno, message))


class Item(NamedTuple):
    key: str
    value: str
    lineno: int


class Block(NamedTuple):
    keyword: str
    head: str
    lineno: int
    items: List[Item]


def parse_blocks(path: str, text: str) -> List[Block]:
    blocks = []  # type: List[Block]
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if "\t" in line[: len(line) - len(line.lstrip())]:
            raise DefError(path, lineno, "indent with spaces, not tabs")
        if not line[0].isspace():
            keyword, _, head = stripped.partition(" ")
            blocks.append(Block(keyword, head.strip(), lineno, []))
            continue
        if not blocks:
            raise DefError(path, lineno, "indented line outside an entry")
        key, _, value = stripped.partition(" ")
        blocks[-1].items.append(Item(key, value.strip(), lineno))
    return blocks
