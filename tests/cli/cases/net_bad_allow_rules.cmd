mkdir net_bad_allow_rules && cd net_bad_allow_rules
# Rules no host could match, or that say something else than was meant,
# are refused (status 2) with why, before any code runs.
for r in 127.1 2130706433 ::1:80 -c a.-b.example; do
    $ERYX --allow-net "$r" -c 'print("ran")' 2>&1
    echo "status $?"
done
$ERYX --allow-net 127.0.0.1 --deny-net 127.1:80 -c 'print("ran")' 2>&1
echo "status $?"
$ERYX --allow-net '[::1]:80' --allow-net 127.0.0.1 -c 'print("ran")' 2>&1
echo "status $?"
