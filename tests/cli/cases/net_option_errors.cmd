# Options of the network that cannot be used are usage errors (status 2)
# that say why: a secret's variable unset or empty, an empty host in its
# list (it was passed over), a --ca-file that is a directory (it was said
# to hold no certificate), a secret given twice (the guest saw one
# placeholder, the other's hosts were left out), a connection count with a
# sign or a space (strtoul took them).
mkdir net_option_errors && cd net_option_errors  # its own directory: the cases share one
unset ERYX_TOK
$ERYX --secret ERYX_TOK@example.com -c pass; echo "status $?"
ERYX_TOK= $ERYX --secret ERYX_TOK@example.com -c pass; echo "status $?"
export ERYX_TOK=a-long-enough-value
$ERYX --secret 'ERYX_TOK@example.com,,other.example' -c pass; echo "status $?"
$ERYX --secret 'ERYX_TOK@example.com,' -c pass; echo "status $?"
$ERYX --secret 'ERYX_TOK@,example.com' -c pass; echo "status $?"
mkdir cas
$ERYX --allow-net example.com:443 --ca-file cas -c pass; echo "status $?"
$ERYX --allow-net example.com --secret ERYX_TOK@example.com --secret ERYX_TOK@other.example -c pass; echo "status $?"
$ERYX --allow-net example.com --max-connections ' 5' -c pass; echo "status $?"
$ERYX --allow-net example.com --max-connections +5 -c pass; echo "status $?"
