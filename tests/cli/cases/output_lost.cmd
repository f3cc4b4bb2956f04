# stdout that cannot be written (a full disk, a closed descriptor): the
# output is lost, so stderr says so and the status is 120, as python's;
# a failure status of the program's own is kept.
$ERYX -c 'print("hello")' >/dev/full; echo "status $?"
$ERYX -c 'print("hello")' >&-; echo "status $?"
$ERYX -c 'import sys; print("x"); sys.exit(3)' >/dev/full; echo "status $?"
$ERYX -c 'pass' >/dev/full; echo "status $?"
