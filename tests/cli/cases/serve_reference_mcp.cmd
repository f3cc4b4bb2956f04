$ERYX serve --mcp
