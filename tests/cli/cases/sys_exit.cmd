$ERYX -c "import sys; sys.exit(5)"
