echo "print(6 * 7)" | $ERYX
