$ERYX -c "print(\"hello\")"
