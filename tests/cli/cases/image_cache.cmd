# The default image: made on first use, then loaded; a damaged one is made
# again (never used, also once stamped as checked); a cache that cannot be written falls back to booting
# CPython; processes starting at once each write a whole file.
export XDG_CACHE_HOME=$PWD/c
$ERYX -c 'print(1)'
ls c/eryx/images | grep -c '\.img$'
# The next start loads it, checked whole, and stamps it (.img.ok): starts
# after that skip hashing its memory while the file is unchanged; the
# damage below changes its times, so it is checked whole again.
$ERYX -c 'print(1)'
ls c/eryx/images | grep -c '\.img\.ok$'
$ERYX -c 'print(1)'
for f in c/eryx/images/*.img; do printf 'garbage' | dd of="$f" bs=1 seek=70000 conv=notrunc status=none; done
$ERYX -c 'print(2)'
for f in c/eryx/images/*.img; do $ERYX --image "$f" -c 'print(3)'; done
rm -rf c
for i in 1 2 3 4; do $ERYX -c 'print(4)' > out$i & done; wait; cat out1 out2 out3 out4
ls c/eryx/images | grep -c '\.img$'
ls c/eryx/images | grep -c tmp
XDG_CACHE_HOME=/proc/no/such/dir $ERYX -c 'print(5)'
ERYX_NO_IMAGE_CACHE=1 XDG_CACHE_HOME=$PWD/none $ERYX -c 'print(6)'; [ -e none ] && echo made || echo "no cache made"
