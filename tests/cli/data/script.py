import sys
print("script", str(sys.argv).replace(chr(39), chr(34)))
