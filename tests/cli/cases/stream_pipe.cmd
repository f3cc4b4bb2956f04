# Output streams through a pipe: the first line arrives while the code
# still sleeps (stdio would hold it until exit in a block buffer).
$ERYX -c 'print("first", flush=True)
import time
time.sleep(3)
print("second")' | { if read -t 2 -r line; then echo "streamed: $line"; else echo "held back"; fi; cat; }
