# The code swaps a directory of the --session path for a symbolic link
# during the run (a writable mount holds the directory and a link to
# elsewhere on the host): the save goes to the directory opened before the
# run, now named d.old, and the host file the link leads to stays
# untouched. Then eryx removes the link, which the next run would follow,
# and warns that the path no longer leads to the session's directory: the
# next run is refused. Same for a parent of the directory (p of p/q).
mkdir -p sw/m/d sw/m/p/q sw/elsewhere/q && echo victim > sw/elsewhere/s.img
echo victim > sw/elsewhere/q/s.img && ln -s "$PWD/sw/elsewhere" sw/m/evil
mount="$PWD/sw/m:/data:rw"
$ERYX --mount "$mount" --session sw/m/d/s.img -c 'x = 1'; echo "status $?"
$ERYX --mount "$mount" --session sw/m/d/s.img -c 'import os
x += 1
os.rename("/data/d", "/data/d.old")
os.rename("/data/evil", "/data/d")
print(os.path.islink("/data/d"))'; echo "status $?"
[ "$(cat sw/elsewhere/s.img)" = victim ] && echo "the link's file is untouched"
[ -e sw/m/d ] || [ -L sw/m/d ] || echo "the link is gone"
$ERYX --session sw/m/d/s.img -c 'pass'; echo "status $?"
$ERYX --session sw/m/d.old/s.img -c 'print(x)'; echo "status $?"
ln -s "$PWD/sw/elsewhere" sw/m/evil
$ERYX --mount "$mount" --session sw/m/p/q/s.img -c 'import os
y = 3
os.rename("/data/p", "/data/p.old")
os.rename("/data/evil", "/data/p")'; echo "status $?"
[ "$(cat sw/elsewhere/q/s.img)" = victim ] && echo "the link's file is untouched"
$ERYX --session sw/m/p.old/q/s.img -c 'print(y)'; echo "status $?"
ls sw/elsewhere sw/elsewhere/q sw/m/d.old sw/m/p.old/q
