$ERYX "$DATA/script.py" x y | sed "s|$DATA|\$DATA|"
