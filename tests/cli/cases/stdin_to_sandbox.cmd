printf "abc\nd" | $ERYX -c "import sys; print(repr(sys.stdin.read()))"
