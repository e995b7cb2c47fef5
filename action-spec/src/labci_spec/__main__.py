"""`python -m labci_spec schema [PATH]`: print (or write) the workflow JSON Schema."""

from __future__ import annotations

import sys

from labci_spec.schema import main

USAGE = "usage: python -m labci_spec schema [PATH]"

if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0] != "schema":
        print(USAGE, file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(main(args[1:]))
