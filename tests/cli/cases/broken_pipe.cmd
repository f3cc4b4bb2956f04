# stdout's reader goes away (head -c1): eryx is not killed by SIGPIPE
# (status 141, which lost the changes of a --session run). The program is
# interrupted at its next write (a loop that prints forever ends), the
# session is saved, and the status is 120 with a message on stderr, as for
# any stdout that cannot be written.
$ERYX --session pipe.session -c 'x = 42
while True: print("y")' | head -c1; echo " status ${PIPESTATUS[0]}"
$ERYX --session pipe.session -c 'print(x)'; echo "status $?"
$ERYX -c 'while True: print("y")' | head -c1; echo " status ${PIPESTATUS[0]}"
# The commands eryx starts get SIGPIPE's default, also when eryx itself
# was started with it ignored: yes dies of it (141).
(trap '' PIPE
 $ERYX --callback 'c=exec 3>&1; { yes 2>/dev/null; printf "\"yes: %s\"" $? >&3; } | head -c1 >/dev/null' \
     -c 'print(await c())')
