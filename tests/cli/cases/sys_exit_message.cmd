$ERYX -c "raise SystemExit(\"bye\")"
