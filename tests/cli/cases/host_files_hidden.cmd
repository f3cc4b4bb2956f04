$ERYX -c "open(\"/etc/passwd\")" 2>&1 | tail -n 1
