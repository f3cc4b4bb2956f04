$ERYX --mcp-server noequals -c pass
