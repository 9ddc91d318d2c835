#!/bin/sh
# Seeds the store on first start, then serves it. The pause before serving stands for a
# database's recovery: `web` must wait for the healthcheck, not merely for the container.
set -eu
if [ ! -s /data/items.txt ]; then
  printf 'apple\nbread\ncheese\n' > /data/items.txt
  echo "db: seeded /data/items.txt"
fi
sleep "${DB_WARMUP:-2}"
echo "db: serving $(wc -l < /data/items.txt) items on :5000"
exec httpd -f -v -p 5000 -h /srv
