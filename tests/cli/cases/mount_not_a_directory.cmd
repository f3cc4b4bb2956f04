# A file given to --mount is refused in words: the message was a bare
# "Not a directory", which read as if the guest path were wrong.
mkdir mount_not_a_directory && cd mount_not_a_directory  # its own directory: the cases share one
echo data > f
$ERYX --mount f:/data -c pass; echo "status $?"
