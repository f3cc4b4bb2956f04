$ERYX mcp -c 'print(1)'
