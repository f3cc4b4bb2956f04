$ERYX --mount "$DATA:/data" -c "print(open(\"/data/hello.txt\").read(), end=\"\")"
