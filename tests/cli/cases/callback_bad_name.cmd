$ERYX --callback print=cat -c 'pass'
