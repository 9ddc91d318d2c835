#!/bin/sh
# Refuses to start when db does not answer: with `condition: service_healthy` honoured, it
# always does.
set -eu
if ! wget -q -O /dev/null "$DB_URL/cgi-bin/items"; then
  echo "web: $DB_URL is not answering" >&2
  exit 1
fi
echo "web: db answers at $DB_URL; serving on :80"
exec httpd -f -v -p 80 -h /www
