$ERYX --mount "$DATA:/data" -c "open(\"/data/new.txt\", \"w\")" 2>/dev/null; echo $?; test ! -e "$DATA/new.txt" && echo absent
