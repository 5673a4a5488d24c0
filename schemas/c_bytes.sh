#!/bin/sh
# Writes each given file as a C array of its bytes plus a terminating 0: `static const unsigned
# char <prefix><i>[]`, i counting from 0 in argument order. Shared by schemas/embed.sh and
# console/embed.sh. Usage: c_bytes.sh PREFIX FILE...
set -eu
prefix=$1
shift
i=0
for f in "$@"; do
  printf 'static const unsigned char %s%d[] = {' "$prefix" "$i"
  od -An -v -tx1 "$f" | tr -s ' \n' ' ' | sed -e 's/^ //' -e 's/ $//' -e 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'
  echo ' 0x00};'
  i=$((i + 1))
done
