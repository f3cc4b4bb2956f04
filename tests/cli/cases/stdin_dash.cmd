echo "import sys; print(sys.argv)" | $ERYX - q
