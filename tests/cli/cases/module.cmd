echo "{\"a\": 1}" | $ERYX -m json.tool
