$ERYX mcp --http 0.0.0.0:0
