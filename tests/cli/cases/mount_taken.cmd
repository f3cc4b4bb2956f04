# A mount where one is already (/tmp, the standard library, an earlier
# mount) says so: the message was a bare "Invalid argument".
mkdir mount_taken && cd mount_taken  # its own directory: the cases share one
mkdir -p m
$ERYX --mount m:/tmp -c pass; echo "status $?"
$ERYX --mount m:/data --mount m:/data/ -c pass; echo "status $?"
$ERYX --mount m:/usr/lib/python3.13 -c pass; echo "status $?"
$ERYX --mount m:/data --mount m:/data/sub -c 'print("nested is fine")'; echo "status $?"
