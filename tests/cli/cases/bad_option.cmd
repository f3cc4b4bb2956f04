$ERYX --bogus 2>/dev/null
