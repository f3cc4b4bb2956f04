$ERYX --http 127.0.0.1:0 -c pass
