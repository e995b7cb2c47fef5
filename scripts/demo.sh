#!/usr/bin/env bash
# One command from a fresh clone to a running labci with an example pull request checked.
source "$(dirname "$0")/bootstrap.sh"
exec "${UV[@]}" run --locked labci demo "$@"
