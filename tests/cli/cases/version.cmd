$ERYX --version
