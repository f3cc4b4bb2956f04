$ERYX -c
