# --session through symbolic links: the file a link names is loaded and
# saved, the links kept, a dangling link's file made; a loop is a usage
# error. The links are followed once, before the code runs: a link the
# code puts in the session file's place in a writable mount is replaced by
# the save, not followed to the host file it names.
mkdir sub && ln -s sub/real.img link1 && ln -s "$PWD/link1" link2 && ln -s loop loop
$ERYX --session link2 -c 'x = 1'; echo "status $?"
$ERYX --session link2 -c 'x += 1; print(x)'; echo "status $?"
[ -L link1 ] && [ -L link2 ] && [ -f sub/real.img ] && echo "links kept"
$ERYX --session loop -c 'pass' 2>&1; echo "status $?"
mkdir m && echo victim > victim && ln -s "$PWD/victim" m/evil
$ERYX --mount "$PWD/m:/data:rw" --session m/s.img -c 'pass'; echo "status $?"
$ERYX --mount "$PWD/m:/data:rw" --session m/s.img \
    -c 'import os; os.replace("/data/evil", "/data/s.img"); print(os.path.islink("/data/s.img"))'
echo "status $?"
cat victim
[ -f m/s.img ] && [ ! -L m/s.img ] && echo "the session is a file again"
