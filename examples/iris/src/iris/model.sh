# The "model": the loss halves every epoch (integer arithmetic: busybox awk has no math).
loss() {
  printf '0.%03d' $((1000 >> $1))
}
