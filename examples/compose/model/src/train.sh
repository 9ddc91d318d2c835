#!/bin/sh
# "Trains" a one-variable linear model y = a*x + b by least squares on
# mymodel/data.csv (x,y per line) and writes the fitted parameters to mymodel/model.txt.
set -eu
dir=/home/jovyan/mymodel
data=${1:-$dir/data.csv}
if [ ! -r "$data" ]; then
  echo "train: no training data at $data" >&2
  exit 2
fi
awk -F, '
  /^[[:space:]]*(#|$)/ { next }
  { n++; sx += $1; sy += $2; sxx += $1*$1; sxy += $1*$2 }
  END {
    if (n < 2) { print "train: need at least two points" > "/dev/stderr"; exit 3 }
    a = (n*sxy - sx*sy) / (n*sxx - sx*sx); b = (sy - a*sx) / n
    printf "a=%.4f\nb=%.4f\nn=%d\n", a, b, n
  }' "$data" > "$dir/model.txt.tmp"
mv "$dir/model.txt.tmp" "$dir/model.txt"
echo "train: fitted $(tr '\n' ' ' < "$dir/model.txt")-> $dir/model.txt"
