$ERYX -c 'raise ValueError("x\0y")'
