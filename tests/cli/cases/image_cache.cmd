# The default image: made on first use, then loaded; a damaged one is made
# again (never used, also once stamped as checked); a cache that cannot be written falls back to booting
# CPython; processes starting at once each write a whole file; a cache
# others may write is not used.
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
# A cache directory or image that another user could write is not used
# (an image is trusted input): the run boots CPython, or the image is made
# again (0644).
chmod 0777 c/eryx/images; rm -f c/eryx/images/*
ERYX_DEBUG=1 $ERYX -c 'print(7)' 2>&1 | sed "s|$PWD/||"
ls c/eryx/images | grep -c '\.img$'
chmod 0700 c/eryx/images; $ERYX -c 'print(8)'; chmod 0666 c/eryx/images/*.img
ERYX_DEBUG=1 $ERYX -c 'print(9)' 2>&1 | sed "s|$PWD/||; s|/[^/]*\.img |/IMAGE |"
stat -c %a c/eryx/images/*.img
XDG_CACHE_HOME=/proc/no/such/dir $ERYX -c 'print(5)'
ERYX_NO_IMAGE_CACHE=1 XDG_CACHE_HOME=$PWD/none $ERYX -c 'print(6)'; [ -e none ] && echo made || echo "no cache made"
