#!/bin/sh
# Validates $INPUT: every non-comment row is "name,quantity" with a whole-number quantity.
f=${1:-$INPUT}
if [ ! -r "$f" ]; then
  echo "check: $f: no such file" >&2
  exit 3
fi
awk -F, '
  /^[[:space:]]*(#|$)/ { next }
  { rows++ }
  NF != 2 || $1 == "" || $2 !~ /^[0-9]+$/ { bad++; printf "check: line %d is bad: %s\n", NR, $0 > "/dev/stderr" }
  END { printf "check: %d rows, %d bad\n", rows, bad; exit (bad > 0 ? 2 : 0) }' "$f"
