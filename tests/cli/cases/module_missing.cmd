$ERYX -m nothere
