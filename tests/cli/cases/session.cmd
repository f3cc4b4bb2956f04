$ERYX --session s.img -c "x = 42" && $ERYX --session s.img -c "print(x * 2)" && $ERYX --session s.img -c "import sys; sys.exit(3)"; echo $?; $ERYX --session s.img -c "print(x)"
