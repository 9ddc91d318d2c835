#!/bin/sh
# "Trains" a model on data/iris.csv and writes it to $MODEL_DIR.
set -e
epochs=1
while [ $# -gt 0 ]; do
  case "$1" in
    --epochs) epochs=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
rows=$(tail -n +2 /app/data/iris.csv | wc -l)
echo "training on $rows samples as $(id -un), $(wc -l < /app/site-packages/INSTALLED) packages installed"
i=1
while [ "$i" -le "$epochs" ]; do
  echo "epoch $i/$epochs: loss=$(. /app/src/iris/model.sh; loss "$i")"
  i=$((i + 1))
done
echo "model: $rows samples, $epochs epochs" > "$MODEL_DIR/model.txt"
echo "saved $MODEL_DIR/model.txt"
