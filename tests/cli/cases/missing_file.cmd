$ERYX /nonexistent/x.py
