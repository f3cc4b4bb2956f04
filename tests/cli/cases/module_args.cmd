$ERYX -m platform --terse >/dev/null; echo $?
