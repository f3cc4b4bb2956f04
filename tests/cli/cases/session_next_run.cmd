# What the code changes in the --session path during a run must not steer
# the next run to the host's files. A link it renames into the file's place
# is removed when the run saved nothing (os._exit: the sandbox is dead; a
# run that saves replaces it), so the next run neither follows it nor makes
# the file it names. A directory of the path swapped for a link is said on
# stderr (golden case session_dir_swap).
mkdir -p tn/m && ln -s "$PWD/tn/made" tn/m/evil
mount="$PWD/tn/m:/data:rw"
$ERYX --mount "$mount" --session tn/m/s.img -c 'x = 1'; echo "status $?"
$ERYX --mount "$mount" --session tn/m/s.img -c 'import os
os.replace("/data/evil", "/data/s.img")
os._exit(0)'; echo "status $?"
[ -L tn/m/s.img ] && echo "the link stayed" || echo "the link is gone"
$ERYX --session tn/m/s.img -c 'print("x" in globals())'; echo "status $?"
[ -e tn/made ] && echo "the link's file was made" || echo "nothing made"
