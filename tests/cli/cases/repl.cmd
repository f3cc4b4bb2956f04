printf "x = 2\nx * 21\ndef f(a):\n    return a + 1\n\nf(x)\n" | HOME=$PWD script -qfec "$ERYX" /dev/null | tr -d "\r" | grep -xE "42|3|>>> f\(x\)"
