# Every usage error says what was wrong (status 2 and a message): an option
# given without its value (these exited 2 with nothing on stderr), --trace
# twice (the same), and a --timeout too long to count in nanoseconds
# (it wrapped round to a limit of under a second and stopped the run).
for opt in --callback --callback-description --mount -v --volume --trace; do
    "$ERYX" $opt
    echo "status $?"
done
"$ERYX" --trace a.jsonl --trace b.jsonl -c pass
echo "status $?"
"$ERYX" --timeout 18446744073710 -c 'print("ran")'
echo "status $?"
"$ERYX" --timeout 18446744073709 -c 'print("ran")'
echo "status $?"
# --session whose file or directory cannot be: refused before the run
# (an empty path, a directory that does not exist, a path ending in /).
"$ERYX" --session '' -c 'print("ran")'
echo "status $?"
"$ERYX" --session no/such/dir/s.img -c 'print("ran")'
echo "status $?"
"$ERYX" --session ./ -c 'print("ran")'
echo "status $?"
