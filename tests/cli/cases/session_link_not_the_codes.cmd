# A link of the --session path that someone else swaps during the run (a
# deployment's `current`, `ln -sfn`) is not the code's: without a writable
# mount where it lies the code could not have put it there, and it stays.
# Only the warning says that the path now leads elsewhere. The code waits,
# through a read-only mount, for the swap to be done.
mkdir -p rel/1 rel/2 flag && ln -s rel/1 current
(sleep 1; ln -s rel/2 current.new && mv -T current.new current && touch flag/swapped) &
$ERYX --mount "$PWD/flag:/flag" --session current/s.img -c 'import os, time
for _ in range(300):
    if os.path.exists("/flag/swapped"):
        break
    time.sleep(0.1)
print("swapped" if os.path.exists("/flag/swapped") else "not swapped")'; echo "status $?"
wait
[ -L current ] && echo "the link stayed: $(readlink current)" || echo "the link is gone"
[ -f rel/1/s.img ] && echo "saved where the path led before the run"
